import Collector
import Prometheus
import Synchronization

/// The collector's Prometheus metrics (GET /metrics). Counters with labels are made once per
/// label set and kept, so a request costs a dictionary lookup, not a registry search.
final class CollectorMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let counters = Mutex<[String: Counter]>([:])
    private let flushSeconds: DurationHistogram
    private let queueBytes: Gauge
    private let queueLimit: Gauge

    init(queueLimitBytes: Int) {
        flushSeconds = registry.makeDurationHistogram(
            descriptor: .init(namespace: "collector", metricName: "flush", unitName: "seconds",
                              helpText: "Time to write and fsync one source's gzip member (one group commit)"),
            buckets: [.microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
                      .milliseconds(20), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1)])
        queueBytes = registry.makeGauge(descriptor: .init(namespace: "collector", metricName: "queue", unitName: "bytes",
                                                          helpText: "Bytes of accepted messages waiting for the next flush"))
        queueLimit = registry.makeGauge(descriptor: .init(namespace: "collector", metricName: "queue_limit", unitName: "bytes",
                                                          helpText: "Queue size at which requests get 503"))
        queueLimit.set(Double(queueLimitBytes))
    }

    /// `collector_<name>_total` with `labels`.
    private func counter(_ name: String, _ labels: [(String, String)], help: String) -> Counter {
        let key = name + labels.map { "\u{1F}\($0.0)=\($0.1)" }.joined()
        return counters.withLock { cache in
            if let counter = cache[key] { return counter }
            let counter = registry.makeCounter(
                descriptor: .init(namespace: "collector", metricName: name, unitName: "total", helpText: help), labels: labels)
            cache[key] = counter
            return counter
        }
    }

    func request(route: String, status: Int) {
        counter("requests", [("route", route), ("status", String(status))],
                help: "HTTP requests by route and status").increment()
    }

    func accepted(source: String, messages: Int, bytes: Int) {
        counter("messages_accepted", [("source", source)],
                help: "Messages written durably (answered 200)").increment(by: Int64(messages))
        counter("received_bytes", [("source", source)],
                help: "Request body bytes received for accepted requests, as sent (gzip or not)").increment(by: Int64(bytes))
    }

    func suppressed(source: String, messages: Int) {
        counter("messages_suppressed", [("source", source)],
                help: "Messages of forgotten people (the suppression list) answered 200 and not written").increment(by: Int64(messages))
    }

    /// A refused request (its messages cannot be counted: the body may not even parse).
    func rejected(reason: String, source: String?) {
        counter("requests_rejected", [("reason", reason), ("source", source ?? "")],
                help: "Requests refused, by reason (too_large, invalid_json, unknown_key, queue_full, disk, ...) and source").increment()
    }

    func commit(_ event: GroupCommitter.Event) {
        switch event {
        case .flushed(let source, _, let bytes, let seconds):
            flushSeconds.record(.nanoseconds(Int64(seconds * 1e9)))
            counter("written_bytes", [("source", source)],
                    help: "NDJSON bytes written to archives (before gzip)").increment(by: Int64(bytes))
        case .failed(let source, _):
            counter("flush_errors", [("source", source)],
                    help: "Writes or fsyncs that failed (their requests got 503)").increment()
        case .closed(let source, _):
            counter("archives_closed", [("source", source)],
                    help: "Archives moved into segment-logs/").increment()
        }
    }

    func render(queuedBytes: Int) -> [UInt8] {
        queueBytes.set(Double(queuedBytes))
        var out: [UInt8] = []
        registry.emit(into: &out)
        return out
    }
}
