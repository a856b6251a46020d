// `heapsnap attach` refuses before touching the process: the checks that read
// /proc and the Yama setting, fed the texts directly (this machine has no Yama
// and runs the tests as root, so the real files cannot show every case).

import Testing
@testable import HeapSnapKit

#if canImport(Glibc)
import Glibc
#endif

@Suite struct AttachRefusalTests {
    static let status = "Name:\tserver\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n"

    @Test("ptrace_scope 3 forbids every attach, root's too, and the line says so")
    func scopeThree() {
        let reason = Attacher.refusal(pid: 42, status: Self.status, ptraceScope: "3\n")
        #expect(reason == "process 42: kernel.yama.ptrace_scope is 3, which forbids attaching to any process until reboot")
    }

    @Test("ptrace_scope 0 (or no Yama) lets the owner or root attach")
    func scopeZero() {
        let mine = "Uid:\t\(geteuid())\t\(geteuid())\t\(geteuid())\t\(geteuid())\n"
        #expect(Attacher.refusal(pid: 42, status: mine, ptraceScope: "0\n") == nil)
        #expect(Attacher.refusal(pid: 42, status: mine, ptraceScope: nil) == nil)
    }

    @Test("another user's process: refused unless root, naming its owner", .enabled(if: geteuid() != 0, "root may attach to any user's process"))
    func anotherUser() {
        #expect(Attacher.refusal(pid: 42, status: Self.status, ptraceScope: nil)?.contains("belongs to user 1000") == true)
    }

    @Test("the numbers of a /proc/PID/status line")
    func field() {
        #expect(Attacher.field("Uid:", in: Self.status) == [1000, 1000, 1000, 1000])
        #expect(Attacher.field("Groups:", in: Self.status) == [])
    }

    @Test("the spec heapsnap_attach parses: the shim's names, one a line, the defaults spelled out")
    func spec() {
        let request = AttachRequest(pid: 1, library: "/lib.so", rate: 65536, directory: "/var/tmp/s", signalBase: 5, startSampling: false)
        #expect(request.spec == "HEAPSNAP_START=0\nHEAPSNAP_DIR=/var/tmp/s\nHEAPSNAP_RATE=65536\nHEAPSNAP_SIGNAL_BASE=5\n")
        #expect(AttachRequest(pid: 1, library: "/lib.so").spec == "HEAPSNAP_START=1\nHEAPSNAP_DIR=/tmp\n")
        #expect(AttachRequest(pid: 1, library: "/lib.so", nativeFrames: .inner).spec
                == "HEAPSNAP_START=1\nHEAPSNAP_DIR=/tmp\nHEAPSNAP_NATIVE=inner\n")
    }
}
