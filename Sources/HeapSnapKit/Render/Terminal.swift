// What the renderers need to know about the terminal the output goes to:
// its width and whether colour is wanted (NO_COLOR, TERM=dumb).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Facts about the terminal the output goes to.
public enum Terminal {
    /// Columns of the terminal on `fd`; nil when `fd` is not a terminal (then `$COLUMNS` if set).
    public static func width(fd: Int32 = 1, environment: [String: String]) -> Int? {
        if isatty(fd) == 1 {
            var size = winsize()
            if ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        }
        if let columns = environment["COLUMNS"].flatMap({ Int($0) }), columns > 0 { return columns }
        return nil
    }

    /// Whether to colour output on `fd`: a terminal, and NO_COLOR unset or empty.
    public static func wantsColor(fd: Int32 = 1, environment: [String: String]) -> Bool {
        isatty(fd) == 1 && (environment["NO_COLOR"] ?? "").isEmpty && environment["TERM"] != "dumb"
    }
}
