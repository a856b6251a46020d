// One vocabulary for values: the spellings of sizes and durations that the
// shim's HEAPSNAP_* variables take (CShim/base/options.c, parse_size and
// parse_seconds), for the CLI's options, so `heapsnap run --rate 16K` means
// what `HEAPSNAP_RATE=16K` means. ShimTests "Units" runs the same inputs
// through the shim and through these functions and requires the same answers.

/// Parses sizes and durations as the shim parses its environment.
public enum Units {
    /// Size suffixes: a letter (any case) and the power of two it multiplies by;
    /// `B` or `iB` (any case) may follow it: `16K`, `16k`, `16KB`, `16KiB`.
    public static let sizeSuffixes: [(letter: Character, shift: Int)] = [("k", 10), ("m", 20), ("g", 30)]

    /// Bytes from `text`: decimal digits, then optionally a size suffix. Nil for
    /// anything else (signs, spaces, decimals, other letters) and on overflow.
    public static func bytes(_ text: String) -> UInt64? {
        var rest = Substring(text)
        let digits = rest.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, var value = UInt64(digits) else { return nil }
        rest = rest.dropFirst(digits.count)
        guard let letter = rest.first else { return value }
        guard rest.allSatisfy(\.isASCII),
              let unit = sizeSuffixes.first(where: { String($0.letter) == letter.lowercased() }) else { return nil }
        rest = rest.dropFirst()
        for tail in ["ib", "b"] where rest.lowercased() == tail {
            rest = ""
        }
        guard rest.isEmpty, value <= UInt64.max >> unit.shift else { return nil }
        value <<= unit.shift
        return value
    }

    /// `bytes` as the HEAPSNAP_* variables spell it, with the largest suffix that divides it
    /// exactly: `64M`, `1G`, `1536K`, `1000`. `bytes(spelled(n)) == n`.
    public static func spelled(_ bytes: UInt64) -> String {
        for unit in sizeSuffixes.reversed() where bytes > 0 && bytes & ((1 << UInt64(unit.shift)) - 1) == 0 {
            return "\(bytes >> UInt64(unit.shift))\(unit.letter.uppercased())"
        }
        return String(bytes)
    }

    /// Nanoseconds from `text` in seconds: decimal digits with an optional
    /// decimal point (`10`, `0.5`, `.25`, `2.`), digits past the ninth decimal
    /// ignored; nil for anything else (signs, exponents, spaces, units) and above 10⁹ s.
    /// As in the shim, a lone `.` reads as 0.
    public static func nanoseconds(seconds text: String) -> UInt64? {
        let utf8 = Array(text.utf8)
        var index = 0, whole: UInt64 = 0, fraction: UInt64 = 0, scale: UInt64 = 1_000_000_000
        func isDigit(_ i: Int) -> Bool { i < utf8.count && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(utf8[i]) }
        while isDigit(index) {
            let (times, o1) = whole.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times.addingReportingOverflow(UInt64(utf8[index] - UInt8(ascii: "0")))
            guard !o1, !o2 else { return nil }
            whole = sum
            index += 1
        }
        if index < utf8.count, utf8[index] == UInt8(ascii: ".") {
            index += 1
            while isDigit(index) {
                if scale > 1 {
                    scale /= 10
                    fraction += UInt64(utf8[index] - UInt8(ascii: "0")) * scale
                }
                index += 1
            }
        }
        guard index == utf8.count, index > 0, whole <= 1_000_000_000 else { return nil }
        return whole * 1_000_000_000 + fraction
    }
}
