// `heapsnap attach`: programs started without the preload get the shim while
// they run (ptrace injection at a safe point, GOT routing), and `dump` and
// `detach` work on them. Each test drives a real process through the real
// CLI and reads back its snapshots; each asserts a value a broken attach
// gets wrong (exact totals at rate 1, which object the program's malloc slot
// points into, the program's own output and exit status, its state).

import Foundation
import HeapSnapKit
import HeapSnapTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The heapsnap CLI with the library under test.
private func tool(_ args: [String]) throws -> RunResult {
    try run(heapsnapTool(), args, env: ["HEAPSNAP_LIB": Shim.library], preload: false, timeout: 60)
}

/// An interactive program started without the shim, waited for until it says "ready".
private func start(_ path: String, _ args: [String], env: [String: String] = [:]) throws -> Background {
    let target = try Background(path, args, env: env, preload: false, interactive: true)
    try Wait.until("\(path) to say ready; stderr: \(target.stderr)") { target.stdout.contains("ready\n") || !target.isRunning }
    return target
}

extension Background {
    /// Sends `command` and waits for the `count`-th line starting with `answer`.
    @discardableResult
    func ask(_ command: String, _ answer: String, count: Int = 1) throws -> String {
        send(command + "\n")
        try Wait.until("\(self.command) to answer \(answer) (#\(count)); stdout: \(stdout.suffix(300)) stderr: \(stderr.suffix(300))") {
            lines(answer).count >= count || !isRunning
        }
        return lines(answer).dropFirst(count - 1).first ?? ""
    }

    func lines(_ prefix: String) -> [String] {
        stdout.split(separator: "\n").filter { $0.hasPrefix(prefix) }.map(String.init)
    }
}

/// /proc/PID/stat's state letter.
private func state(_ pid: pid_t) -> Character? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return nil }
    return stat[stat.index(close, offsetBy: 2)...].first
}

/// ShdPnd of the process, and SigBlk of each thread, from /proc.
private func signalState(_ pid: pid_t) -> (shared: String, blocked: [String: String]) {
    func field(_ name: String, _ text: String) -> String {
        text.split(separator: "\n").first { $0.hasPrefix(name) }.map { String($0.dropFirst(name.count)).trimmingCharacters(in: .whitespaces) } ?? ""
    }
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    var blocked: [String: String] = [:]
    for tid in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? [] {
        blocked[tid] = field("SigBlk:", (try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/status", encoding: .utf8)) ?? "")
    }
    return (field("ShdPnd:", status), blocked)
}

private func maps(_ pid: pid_t) -> String { (try? String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8)) ?? "" }

@Suite("Attach: heapsnap attach, dump and detach on processes started without the preload", .serialized)
struct AttachTests {
    @Test("a multi-threaded malloc storm: exact totals for what is allocated after attach, 100 start/stop rounds, slots restored, output and exit status unchanged")
    func storm() throws {
        let dir = try Scratch()
        let target = try start(try Programs.shared.path("attach_target.c"), ["4"])
        let pid = target.pid
        #expect(try target.ask("where", "malloc in ").hasSuffix("/libc.so.6 weak null"))

        // A signal pending before the attach (blocked in every thread) stays pending; every
        // thread's mask is what it was.
        kill(pid, SIGUSR2)
        let masks = signalState(pid)
        #expect(masks.shared.contains("800"), "SIGUSR2 pending: \(masks.shared)")
        let attach = try tool(["attach", "--rate", "1", "--dir", dir.path, "\(pid)"])
        #expect(attach.status == 0 && attach.stderr.contains("heapsnap: attached to process \(pid) in "), "\(attach.stderr)")
        #expect(attach.stderr.split(separator: "\n").count == 1, "one line: \(attach.stderr)")
        let after = signalState(pid)
        #expect(after.shared == masks.shared)
        for (tid, mask) in masks.blocked { #expect(after.blocked[tid] == mask, "thread \(tid)'s signal mask") }
        #expect(try target.ask("where", "malloc in ", count: 2).hasSuffix("/libheapsnap_preload.so weak null"))

        // Blocks allocated before the attach (site_pre) are freed now, through the shim.
        try target.ask("leak 100 1000", "leaked")
        let dump = try tool(["dump", "\(pid)"])
        #expect(dump.status == 0, "\(dump.stderr)")
        let snap = try dir.read(dump.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let sites = target.sites
        #expect(snap.header.flags.contains(.exact))
        let leak = snap.site(sites["leak"]), freed = snap.site(sites["freed"]), pre = snap.site(sites["pre"])
        #expect(leak.inuse.objects.value == 100 && leak.inuse.bytes.value == 100_000 && leak.alloc.objects.value == 100)
        #expect(freed.alloc.objects.value == 100 && freed.alloc.bytes.value == 100_000 && freed.inuse.samples == 0)
        #expect(pre.alloc.samples == 0 && pre.inuse.samples == 0, "blocks from before the attach are not counted")

        let detach = try tool(["detach", "\(pid)"])
        #expect(detach.status == 0 && detach.stderr.contains("detached from process \(pid)"), "\(detach.stderr)")
        #expect(try target.ask("where", "malloc in ", count: 3).hasSuffix("/libc.so.6 weak null"), "detach restores the slot")

        // 100 more sessions in a tight loop, through the signals as `attach` and `detach`
        // of a loaded library send them: each routes, samples, writes its final snapshot, restores.
        let before = dir.snapshots.count
        for round in 1...100 {
            kill(pid, Shim.signalBase + 1)
            kill(pid, Shim.signalBase + 2)
            try Wait.until("round \(round)'s final snapshot") { dir.snapshots.count >= before + round || !target.isRunning }
        }
        #expect(try dir.read(try #require(dir.snapshots.last)).header.flags.contains(.final))
        #expect(try target.ask("where", "malloc in ", count: 4).hasSuffix("/libc.so.6 weak null"))

        // attach again: the library is there, so it only starts; detach again.
        let again = try tool(["attach", "\(pid)"])
        #expect(again.status == 0 && again.stderr.contains("has libheapsnap_preload.so already"), "\(again.stderr)")
        // The start goes through the signal, so the writer routes a moment later.
        var asked = 4
        try Wait.until("malloc routed again") {
            asked += 1
            return (try? target.ask("where", "malloc in ", count: asked).hasSuffix("/libheapsnap_preload.so weak null")) ?? true
        }
        #expect(try tool(["detach", "\(pid)"]).status == 0)

        target.askQuit()
        #expect(try target.wait() == 7)
        #expect(target.lines("errors ") == ["errors 0"], "\(target.stdout.suffix(200))")
        #expect(target.stderr.isEmpty, "\(target.stderr)")
    }

    @Test("a C++ program: new[] after attach counted exactly, the program's result and exit status unchanged")
    func cxx() throws {
        let dir = try Scratch()
        let target = try start(try Programs.shared.path("attach_cxx.cpp"), [])
        let attach = try tool(["attach", "--rate", "1", "--dir", dir.path, "\(target.pid)"])
        #expect(attach.status == 0, "\(attach.stderr)")
        try target.ask("leak 200", "leaked")
        let dump = try tool(["detach", "\(target.pid)"])
        #expect(dump.status == 0, "\(dump.stderr)")
        let snap = try dir.read(dump.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let site = snap.site(target.sites["new"])
        #expect(site.inuse.objects.value == 200 && site.inuse.bytes.value == 200_000)
        target.askQuit()
        #expect(try target.wait() == 5)
        #expect(target.lines("checksum ") == ["checksum 3"])
    }

    @Test("a library dlopen'ed after attach, found through the program's RUNPATH, is routed: its blocks are counted exactly")
    func dlopenAfterAttach() throws {
        let dir = try Scratch(), bin = try Scratch()
        // The program finds the library by name through its DT_RUNPATH ($ORIGIN): the routed
        // dlopen must search the caller's path, not the shim's.
        let program = bin.path + "/attach_target", library = bin.path + "/libattach_lib.so"
        for (args, what) in [(["-O1", "-g", "-fno-builtin", "-pthread", "-o", program, Shim.packageRoot + "/Tests/Programs/attach_target.c",
                               "-ldl", "-Wl,-rpath,$ORIGIN"], "attach_target.c"),
                             (["-O1", "-g", "-fno-builtin", "-shared", "-fPIC", "-o", library,
                               Shim.packageRoot + "/Tests/Programs/attach_lib.c"], "attach_lib.c")] {
            let cc = try run("/usr/bin/cc", args, preload: false)
            #expect(cc.status == 0, "compiling \(what): \(cc.stderr)")
        }
        let target = try start(program, ["2"])
        #expect(try tool(["attach", "--rate", "1", "--dir", dir.path, "\(target.pid)"]).status == 0)
        #expect(try target.ask("dlopen libattach_lib.so 30", "dlopened") == "dlopened", "\(target.stdout)")
        let dump = try tool(["detach", "\(target.pid)"])
        let snap = try dir.read(dump.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let site = snap.site(target.sites["lib"])
        #expect(site.inuse.objects.value == 30 && site.inuse.bytes.value == 30_000)
        target.askQuit()
        #expect(try target.wait() == 7)
    }

    static let jemalloc = ["/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2"]
        .first { FileManager.default.fileExists(atPath: $0) }

    @Test("a program allocating with jemalloc (preloaded, not heapsnap): the safe point is jemalloc's malloc, blocks counted exactly, jemalloc's slot restored",
          .enabled(if: jemalloc != nil, "libjemalloc2 is not installed"))
    func jemallocProgram() throws {
        let dir = try Scratch()
        let target = try start(try Programs.shared.path("attach_target.c"), ["2"], env: ["LD_PRELOAD": Self.jemalloc!])
        #expect(try target.ask("where", "malloc in ").contains("/libjemalloc.so.2 weak "))
        #expect(try tool(["attach", "--rate", "1", "--dir", dir.path, "\(target.pid)"]).status == 0)
        try target.ask("leak 10 100", "leaked")
        let detach = try tool(["detach", "\(target.pid)"])
        let snap = try dir.read(detach.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(snap.site(target.sites["leak"]).inuse.bytes.value == 1000)
        #expect(try target.ask("where", "malloc in ", count: 2).contains("/libjemalloc.so.2 weak "))
        target.askQuit()
        #expect(try target.wait() == 7)
        #expect(target.lines("errors ") == ["errors 0"])
    }

    @Test("a stopped process (SIGSTOP) is attached and stays stopped; after SIGCONT it samples")
    func stopped() throws {
        let dir = try Scratch()
        let target = try start(try Programs.shared.path("attach_target.c"), ["2"])
        kill(target.pid, SIGSTOP)
        try Wait.until("the process to stop") { state(target.pid) == "T" }
        let attach = try tool(["attach", "--rate", "1", "--dir", dir.path, "\(target.pid)"])
        #expect(attach.status == 0 && attach.stderr.contains("left stopped"), "\(attach.stderr)")
        usleep(100_000)
        #expect(state(target.pid) == "T", "still stopped after the attach")
        kill(target.pid, SIGCONT)
        try target.ask("leak 10 500", "leaked")
        let dump = try tool(["detach", "\(target.pid)"])
        let snap = try dir.read(dump.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(snap.site(target.sites["leak"]).inuse.bytes.value == 5000)
        target.askQuit()
        #expect(try target.wait() == 7)
    }

    @Test("refused, one line and exit status 1, nothing touched: no safe point in time (idle process), statically linked program, seccomp, no such process")
    func refusals() throws {
        // An idle process never enters malloc: the attach gives up and leaves it running as it was.
        let idle = try Background("/bin/sleep", ["30"], preload: false)
        usleep(100_000)
        let timedOut = try tool(["attach", "--timeout", "0.5", "\(idle.pid)"])
        #expect(timedOut.status == 1 && timedOut.stderr.contains("did not call malloc") && timedOut.stderr.split(separator: "\n").count == 1,
                "\(timedOut.stderr)")
        // Detached: it leaves its tracing stop as soon as the kernel runs it again.
        let untouched = Wait.poll(timeout: 5) {
            let status = (try? String(contentsOfFile: "/proc/\(idle.pid)/status", encoding: .utf8)) ?? ""
            return status.contains("TracerPid:\t0") && state(idle.pid) == "S"
        }
        #expect(untouched && idle.isRunning && !maps(idle.pid).contains("libheapsnap_preload"))

        let source = try Scratch()
        try "int main(void) { for (;;) __asm__ volatile(\"pause\"); }\n".write(toFile: source.path + "/spin.c", atomically: true, encoding: .utf8)
        let cc = try run("/usr/bin/cc", ["-static", "-O1", "-o", source.path + "/spin", source.path + "/spin.c"], preload: false)
        if cc.status == 0 {
            let spin = try Background(source.path + "/spin", [], preload: false)
            usleep(50_000)
            let r = try tool(["attach", "\(spin.pid)"])
            #expect(r.status == 1 && r.stderr.contains("statically linked"), "\(r.stderr)")
        } else {
            Issue.record("no static libc to build a static program (libc6-dev's libc.a): \(cc.stderr)")
        }

        // A seccomp filter (one that allows everything): we cannot know its rules.
        let filtered = try start(try Programs.shared.path("attach_target.c"), ["1", "seccomp"])
        let sec = try tool(["attach", "\(filtered.pid)"])
        #expect(sec.status == 1 && sec.stderr.contains("runs under seccomp"), "\(sec.stderr)")
        #expect(!maps(filtered.pid).contains("libheapsnap_preload"))
        filtered.askQuit()
        #expect(try filtered.wait() == 7)

        let none = try tool(["attach", "2147483000"])
        #expect(none.status == 1 && none.stderr == "heapsnap: process 2147483000: no such process\n", "\(none.stderr)")
        let bad = try tool(["attach", "--rate", "0", "1"])
        #expect(bad.status == 64, "\(bad.stderr)")
    }

    @Test("a preloaded process: attach only starts it through its signal, detach writes the final snapshot")
    func preloaded() throws {
        let dir = try Scratch()
        let target = try Background(try Programs.shared.path("attach_target.c"), ["2"], env: ["HEAPSNAP_DIR": dir.path],
                                    preload: true, interactive: true)
        try Wait.until("ready") { target.stdout.contains("ready\n") }
        let attach = try tool(["attach", "\(target.pid)"])
        #expect(attach.status == 0 && attach.stderr.contains("sampling started through its signal"), "\(attach.stderr)")
        let detach = try tool(["detach", "\(target.pid)"])
        #expect(detach.status == 0 && detach.stderr.contains("was preloaded"), "\(detach.stderr)")
        #expect(dir.snapshots.count == 1)
        target.askQuit()
        #expect(try target.wait() == 7)
    }

    @Test("a user attaches to their own process without root (no Yama here)", .enabled(if: getuid() == 0, "needs root to run as nobody"))
    func ownProcessAsUser() throws {
        let dir = try Scratch()
        let nobody = try #require(getpwnam("nobody")?.pointee.pw_uid)
        chown(dir.path, nobody, gid_t.max)
        let setpriv = "/usr/bin/setpriv"
        try #require(FileManager.default.isExecutableFile(atPath: setpriv), "setpriv (util-linux) is missing")
        let asNobody = ["--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]
        let target = try start(setpriv, asNobody + [try Programs.shared.path("attach_target.c"), "2"])
        let r = try run(setpriv, asNobody + [heapsnapTool(), "attach", "--rate", "1", "--dir", dir.path, "\(target.pid)"],
                        env: ["HEAPSNAP_LIB": Shim.library], preload: false)
        #expect(r.status == 0, "\(r.stderr)")
        try target.ask("leak 5 100", "leaked")
        let detach = try run(setpriv, asNobody + [heapsnapTool(), "detach", "\(target.pid)"], preload: false)
        #expect(detach.status == 0, "\(detach.stderr)")
        let snap = try dir.read(detach.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(snap.site(target.sites["leak"]).inuse.bytes.value == 500)
        target.askQuit()
        #expect(try target.wait() == 7)
    }

    @Test("another user's process is refused before anything is touched", .enabled(if: getuid() == 0, "needs root to run as nobody"))
    func anotherUser() throws {
        // heapsnap runs as nobody against a root process.
        let target = try start(try Programs.shared.path("attach_target.c"), ["1"])
        let setpriv = "/usr/bin/setpriv"
        try #require(FileManager.default.isExecutableFile(atPath: setpriv), "setpriv (util-linux) is missing")
        let r = try run(setpriv, ["--reuid", "nobody", "--regid", "nogroup", "--clear-groups", heapsnapTool(), "attach", "\(target.pid)"],
                        env: ["HEAPSNAP_LIB": Shim.library], preload: false)
        if r.stderr.contains("Permission denied") && r.stderr.contains("heapsnap:") == false {
            Issue.record("nobody cannot run \(heapsnapTool()) here: \(r.stderr)")
        } else {
            #expect(r.status == 1 && (r.stderr.contains("permission denied") || r.stderr.contains("not to you")), "\(r.stderr)")
        }
        #expect(!maps(target.pid).contains("libheapsnap_preload"))
        target.askQuit()
        #expect(try target.wait() == 7)
    }
}

/// The process `unshare --fork` runs: unshare's child (found through /proc's children lists).
private func unsharedChild(of pid: pid_t) -> pid_t? {
    let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
    return children.split(separator: " ").first.flatMap { pid_t($0) }
}

@Suite("Attach: a process in a container (mount and pid namespaces of its own, its own /tmp)", .serialized)
struct AttachContainerTests {
    @Test("the library reaches it through its /dev/shm, its snapshots in its own /tmp are found through /proc/PID/root, under the pid it sees",
          .enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare"), "needs root and unshare (util-linux)"))
    func container() throws {
        // The program must stay visible once the container mounts its own /tmp over ours.
        let dir = "/var/tmp/heapsnap-attach-test-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let program = dir + "/attach_target"
        try? FileManager.default.removeItem(atPath: program)
        try FileManager.default.copyItem(atPath: try Programs.shared.path("attach_target.c"), toPath: program)
        let box = try Background("/usr/bin/unshare", ["--mount", "--pid", "--fork", "--mount-proc", "/bin/sh", "-c",
                                                      "mount -t tmpfs tmpfs /tmp && exec \(program) 2"],
                                 preload: false, interactive: true)
        try Wait.until("ready in the container; \(box.stderr)") { box.stdout.contains("ready\n") || !box.isRunning }
        let pid = try #require(unsharedChild(of: box.pid))
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        #expect(status.contains("NSpid:\t\(pid)\t1"), "pid 1 in its own namespace")

        let attach = try tool(["attach", "--rate", "1", "\(pid)"])
        #expect(attach.status == 0 && attach.stderr.contains("snapshots in /proc/\(pid)/root/tmp"), "\(attach.stderr)")
        #expect(maps(pid).contains("/dev/shm/heapsnap.0/libheapsnap_preload.so"))
        try box.ask("leak 10 100", "leaked")
        let dump = try tool(["dump", "\(pid)"])
        let file = dump.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(dump.status == 0 && file == "/proc/\(pid)/root/tmp/heapsnap.1.0.heapsnap", "\(dump.stdout) \(dump.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/heapsnap.1.0.heapsnap"), "written in the container's /tmp, not ours")
        let snap = try SnapshotReader.read(path: file)
        #expect(snap.site(box.sites["leak"]).inuse.bytes.value == 1000)
        #expect(try tool(["detach", "\(pid)"]).status == 0)
        box.askQuit()
        #expect(try box.wait() == 7)
    }
}

@Suite("Attach: Python services attached mid-run", .serialized)
struct AttachPythonTests {
    /// Attaches to the service loop, grows it, and checks that the snapshot names its Python lines.
    func service(_ python: String) throws {
        let dir = try Scratch()
        let target = try start(python, [Shim.packageRoot + "/Tests/Programs/attach_service.py"])
        usleep(200_000)                 // mid-run
        let attach = try tool(["attach", "--rate", "4K", "--dir", dir.path, "\(target.pid)"])
        #expect(attach.status == 0, "\(attach.stderr)")
        try target.ask("grow 3000", "grown")
        let dump = try tool(["dump", "\(target.pid)"])
        let file = dump.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let top = try tool(["top", file, "--limit", "0", "--width", "200"])
        #expect(top.stdout.contains("attach_service.py:23") && top.stdout.contains("handle"), "\(top.stdout)")
        #expect(top.stdout.contains("attach_service.py:28") && top.stdout.contains("grow"), "\(top.stdout)")
        #expect(try tool(["detach", "\(target.pid)"]).status == 0)
        target.askQuit()
        #expect(try target.wait() == 0)
        #expect(target.lines("bye ") == ["bye 3000"])
    }

    @Test("Debian's python3 (3.11, static libpython, non-PIE)", .enabled(if: Interpreter.debian.path != nil, "Debian's python3.11 is not installed"))
    func debian() throws { try service(try Interpreter.debian.required()) }

    @Test("pyenv's 3.12 (libpython3.12.so)", .enabled(if: Interpreter.pyenv(12).path != nil, "pyenv's 3.12 is not installed"))
    func pyenv312() throws { try service(try Interpreter.pyenv(12).required()) }

    @Test("pyenv's 3.13 (libpython3.13.so)", .enabled(if: Interpreter.pyenv(13).path != nil, "pyenv's 3.13 is not installed"))
    func pyenv313() throws { try service(try Interpreter.pyenv(13).required()) }
}

extension Background {
    /// Asks an attach test program to finish.
    func askQuit() {
        send("quit\n")
        closeInput()
    }
}
