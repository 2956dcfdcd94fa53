@_spi(LedgerInternals) @testable import Projections
import Testing

/// The registry of state tables (`StateTables.all`) is what the store, the fold, rebuild,
/// verify and the hot cache iterate: it must list every state table once, in order.
@Suite("State tables")
struct StateTablesTests {
    @Test("the registry lists every state table once, in ProjectionTable order, and a state opens each as its own table")
    func registry() {
        #expect(StateTables.all.map(\.table) == ProjectionTable.stateTables)
        #expect(StateTables.all.enumerated().allSatisfy { $0.offset == $0.element.table.index })
        let state = DomainState()
        let tables = StateTables.all.map { $0.open(in: state) }
        #expect(Set(tables.map { ObjectIdentifier($0) }).count == tables.count)
        // asked again, the same objects
        #expect(zip(tables, StateTables.all.map { $0.open(in: state) }).allSatisfy { $0 === $1 })
    }
}
