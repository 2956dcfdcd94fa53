import Foundation
import Ledger
@_spi(LedgerInternals) @testable import Projections
import Testing

/// The checkpoint's JSON form in the library (issue 15): what `ledger-tool checkpoint` prints.
@Suite("Checkpoint JSON")
struct CheckpointJSONTests {
    @Test("a checkpoint made by a service reads back from its JSON, signed or not, and still confirms the log; damaged JSON names the field")
    func roundTrip() throws {
        let dir = TempDir()
        let ledger = try PermissionLedger(directory: dir.path, options: .init(authorizationKey: testKey, durability: .noSync))
        _ = try ledger.execute(TimedCommand(.registerUser(account: "a", businessEmail: "a@t.com")))
        let signing = CheckpointSigningKey.generate()
        for made in [try Checkpoint.make(ledger.log), try Checkpoint.make(ledger.log, key: Array(repeating: 7, count: 32)),
                     try Checkpoint.make(ledger.log, signingKey: signing)] {
            let back = try Checkpoint(json: try JSONParser.parse(Array(made.json.text.utf8)))
            #expect(back == made)
            #expect(try back.problem(in: ledger.log) == nil)
        }
        func refusal(_ text: String) -> String? {
            do { _ = try Checkpoint(json: try JSONParser.parse(Array(text.utf8))); return nil } catch let e as CheckpointFormatError { return e.message } catch { return "\(error)" }
        }
        #expect(refusal(#"{"seq":1}"#)?.contains("headHash") == true)
        #expect(refusal(#"{"seq":1,"headHash":"\#(String(repeating: "ab", count: 32))","signature":"00"}"#)?.contains("signature") == true)
        #expect(refusal(#"{"seq":1,"headHash":"\#(String(repeating: "ab", count: 32))","at":"yesterday"}"#)?.contains("\"at\"") == true)
    }
}
