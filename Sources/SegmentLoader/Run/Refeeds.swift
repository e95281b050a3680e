import Foundation
import SegmentCore
import SegmentS3
import SegmentStages
import SegmentWarehouse

/// Feeders started again for files written again, each on a thread of its own.
final class Refeeds {
    private let capacity: Int
    private let feed: @Sendable (Int, Channel<Chunk>) -> Void
    private let group = DispatchGroup()
    private var channels: [Channel<Chunk>] = []

    init(capacity: Int, feed: @escaping @Sendable (Int, Channel<Chunk>) -> Void) {
        self.capacity = capacity
        self.feed = feed
    }

    /// A new channel that the `k`th file's chunks come through again.
    func start(_ k: Int) -> Channel<Chunk> {
        let channel = Channel<Chunk>(capacity: capacity)
        channels.append(channel)
        DispatchQueue(label: "segment-loader.load.again").async(group: group) { [feed] in feed(k, channel) }
        return channel
    }

    func closeAll() { channels.forEach { $0.close() } }
    func wait() { group.wait() }
}
