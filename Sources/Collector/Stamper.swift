import SegmentCore

/// What the collector adds to each accepted message before it is written: the
/// server's `receivedAt`, a `messageId` when the client sent none, `context.ip` from the peer
/// when absent, and, for a batch, the envelope's `context`, `sentAt` and `integrations`
/// merged as the loader merges them (`Envelope.messages`, the same code).
public struct Stamper: Sendable {
    public init() {}

    /// The messages of one request body for `route` (`track`, ..., `batch`, `import`), stamped.
    /// A single-call route sets `type` when the body has none.
    public func messages(in body: JSONValue, route: String, source: String, peer: String?, now: Instant) -> [JSONValue] {
        let items: [JSONValue]
        if route == "batch" || route == "import" {
            items = Envelope.messages(in: body)
        } else if case .object(var members) = body {
            if body["type"] == nil { members.append(("type", .string(route))) }
            items = [.object(members)]
        } else {
            items = [body]
        }
        return items.map { stamp($0, source: source, peer: peer, now: now) }
    }

    /// One message: `receivedAt` set to `now` (the server's clock decides, as Segment's does);
    /// `messageId` kept, or a digest of the source and the message as the client sent it, so
    /// a client's retry of the same request gets the same id and the loader keeps one copy;
    /// `context.ip` kept, or the peer's address.
    public func stamp(_ message: JSONValue, source: String, peer: String?, now: Instant) -> JSONValue {
        guard case .object(var members) = message else { return message }
        if message["messageId"]?.stringValue?.isEmpty ?? true {
            var sent: [UInt8] = Array(source.utf8)
            sent.append(0x0a)
            JSONWriter.write(message, into: &sent, sortedKeys: true)
            let digest = SHA256Hasher.hash(sent)
            members.removeAll { $0.key == "messageId" }
            members.append(("messageId", .string("collector-" + hexString(digest.prefix(16)))))
        }
        members.removeAll { $0.key == "receivedAt" }
        members.append(("receivedAt", .string(Timestamp.iso8601(now))))
        if let peer {
            if let i = members.lastIndex(where: { $0.key == "context" }), case .object(var context) = members[i].value {
                if context.first(where: { $0.key == "ip" })?.value.stringValue?.isEmpty ?? true {
                    context.removeAll { $0.key == "ip" }
                    context.append(("ip", .string(peer)))
                    members[i].value = .object(context)
                }
            } else {
                members.removeAll { $0.key == "context" }
                members.append(("context", .object([("ip", .string(peer))])))
            }
        }
        return .object(members)
    }
}
