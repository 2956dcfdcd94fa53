import Foundation
import Ledger
import Projections
import _LedgerTestSupport

/// `LEDGER_FUZZ_TARGET` = `command`, `event` or `binary` fixes the decoder; otherwise the
/// first byte of each input chooses it (as in the corpus files).
let fixedTarget: UInt8? = {
    switch ProcessInfo.processInfo.environment["LEDGER_FUZZ_TARGET"] {
    case "command": return 0
    case "event": return 1
    case "binary": return 2
    default: return nil
    }
}()

/// libFuzzer's entry point: feeds one input to the decoders (see `FuzzTargets`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let fixedTarget {
        FuzzTargets.run(selector: fixedTarget, input: bytes)
    } else if let first = bytes.first {
        FuzzTargets.run(selector: first, input: Array(bytes.dropFirst()))
    }
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> Int32
) -> Int32

/// SwiftPM links an executable's entry point under this name; hand over to libFuzzer.
@_cdecl("ledger_fuzz_main")
public func ledgerFuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var vector = argv
    return LLVMFuzzerRunDriver(&count, &vector) { data, size in fuzz(data, size) }
}
