import SegmentCore
import SegmentStages
import SegmentWarehouse

/// The stages after the parse, run on the writer's thread one file at a time, each on the
/// packed records the one before hands it: Dedupe (the destination claims the ids: an earlier
/// run may have loaded them), Split (`Splitter`: rows per table; `ProfileDerivation`: users and
/// accounts; `ModelTouches`: ids the models must revisit), Load (the destination creates the
/// schema the admitted records need, then writes their rows).
final class WriteStages {
    let destination: any Destination
    private let profiles = ProfileDerivation()
    private let touches = ModelTouches()

    init(destination: any Destination) {
        self.destination = destination
    }

    /// Runs `body` as one file: its rows, profiles, touched ids and bookkeeping commit together
    /// when it returns; when it throws, nothing of the file stays.
    func file<R>(_ body: () throws -> R) throws -> R {
        // What a file that rolled back had noted is forgotten here, at the next file's start.
        profiles.reset()
        touches.reset()
        return try destination.file {
            let result = try body()
            try profiles.derive(into: destination)
            try touches.record(into: destination)
            return result
        }
    }

    /// Runs `body`, whose files are each a `file`, as one transaction (see `WritePass.groupFiles`).
    func group<R>(_ body: () throws -> R) throws -> R {
        guard let grouped = destination as? any GroupedFiles else { return try body() }
        return try grouped.group(body)
    }

    /// Loads a chunk's records (the copies that won within the run) with the schema they need;
    /// returns, for each, whether it was loaded (false: an earlier run already loaded its id).
    /// `next`, the chunk to be loaded after this one, has its ids claimed while this one's
    /// rows are built (where the destination can: `preclaim`).
    func load(_ records: MessageRecords, needs: SchemaNeeds? = nil, next: MessageRecords? = nil) throws -> [Bool] {
        try records.bytes.withUnsafeBytes { raw in
            let headers = RecordCursor.headers(of: records.count, in: raw)
            let admitted = try destination.claim(headers)
            if let next, let shared = destination as? any SharedLoading {
                try next.bytes.withUnsafeBytes { try shared.preclaim(RecordCursor.headers(of: next.count, in: $0)) }
            }
            try destination.prepareSchema(needs ?? SchemaNeeds.of(headers, in: raw), headers: headers, admitted: admitted, in: raw)
            try destination.write(Splitter.rows(of: headers, admitted: admitted), of: headers, in: raw)
            profiles.note(headers, admitted: admitted)
            if destination.keepsTouches { touches.note(headers, admitted: admitted, in: raw) }
            return admitted
        }
    }
}
