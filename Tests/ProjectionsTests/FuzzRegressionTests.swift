import Foundation
@_spi(LedgerInternals) import Projections
import _LedgerTestSupport
import Testing

/// Replays the fuzz corpus and every crasher the fuzzer ever found (Fuzz/corpus, Fuzz/crashers)
/// through the same decoders, without the sanitizer: a value that does not survive its own
/// encoding is recorded as a failure naming the file (a trap would still end the run).
@Suite("Fuzz regressions")
struct FuzzRegressionTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path + "/Fuzz"

    @Test("every corpus file and every kept crasher decodes or is refused, never traps")
    func replay() throws {
        var count = 0
        for folder in ["corpus", "crashers"] {
            let dir = Self.root + "/" + folder
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
                guard let data = FileManager.default.contents(atPath: dir + "/" + name) else { continue }
                let bytes = [UInt8](data)
                // a crasher found with a fixed target is named TARGET-crash-…; other files carry a selector byte
                let fixed = ["command", "event", "binary"].firstIndex { name.hasPrefix($0 + "-") && folder == "crashers" }
                var problem: String?
                if let fixed {
                    problem = FuzzTargets.problem(selector: UInt8(fixed), input: bytes)
                } else if let first = bytes.first {
                    problem = FuzzTargets.problem(selector: first, input: Array(bytes.dropFirst()))
                }
                #expect(problem == nil, "\(folder)/\(name): \(problem ?? "")")
                count += 1
            }
        }
        #expect(count >= 120)
    }
}
