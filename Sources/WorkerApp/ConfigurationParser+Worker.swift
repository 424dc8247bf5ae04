import CancelCore
import Kafka
import Worker

extension ConfigurationParser {
    /// `kafka.*`: where the cluster is and how to authenticate; raw properties last.
    func kafka(defaults: KafkaClientOptions) throws -> KafkaClientOptions {
        let bootstrap = self.string(
            "kafka.bootstrap-servers", default: defaults.bootstrapServers.joined(separator: ","))
        var kafka = KafkaClientOptions(bootstrapServers: bootstrap)
        guard !kafka.bootstrapServers.isEmpty else {
            throw AppConfiguration.Invalid(
                key: "kafka.bootstrap-servers", message: "expected host:port[,host:port…], got \"\(bootstrap)\"")
        }
        let securityProtocol = self.string("kafka.security-protocol", default: defaults.security.protocol)
        let protocols = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"]
        guard protocols.contains(securityProtocol.lowercased()) else {
            throw AppConfiguration.Invalid(
                key: "kafka.security-protocol",
                message: "expected \(protocols.joined(separator: ", ")), got \"\(securityProtocol)\""
            )
        }
        kafka.security = KafkaSecurity(
            protocol: securityProtocol,
            saslMechanism: self.value("kafka.sasl-mechanism"),
            saslUsername: self.value("kafka.sasl-username"),
            saslPassword: self.value("kafka.sasl-password"),
            sslCALocation: self.value("kafka.ssl-ca-location")
        )
        for (index, pair) in self.list("kafka.properties").enumerated() {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else {
                // Not echoed: a comma inside a secret's value splits it here.
                throw AppConfiguration.Invalid(
                    key: "kafka.properties",
                    message:
                        "item \(index + 1) is not name=value (values cannot contain commas; the item is not shown, it may be part of a secret)"
                )
            }
            let name = parts[0].trimmingCharacters(in: .whitespaces)
            if let reason = Self.reservedKafkaProperties[name] {
                throw AppConfiguration.Invalid(
                    key: "kafka.properties", message: "\(name) cannot be set here: \(reason)")
            }
            kafka.additionalProperties[name] = parts[1]
        }
        self.note(
            "kafka.properties",
            kafka.additionalProperties.sorted { $0.key < $1.key }.map { name, value in
                let secret = ["password", "secret", "key", "oauthbearer"].contains { name.contains($0) }
                return "\(name)=\(secret ? "[REDACTED]" : value)"
            }.joined(separator: ",")
        )
        return kafka
    }

    /// Librdkafka properties the worker sets itself and relies on: `kafka.properties` may not
    /// override them (a worker with auto-commit on loses the commands of a member that dies mid-call).
    static let reservedKafkaProperties: [String: String] = {
        let commits = "the worker commits a command's offset only once the command has its outcome"
        return [
            "enable.auto.commit": commits,
            "enable.auto.offset.store": commits,
            "enable.partition.eof": "the worker's consumer sets it",
            "auto.offset.reset": "a new group reads the commands and retry topics from their beginning",
            "group.id": "use group-id",
            "group.instance.id": "use group-instance-id",
            "session.timeout.ms": "use session-timeout",
            "heartbeat.interval.ms": "it follows session-timeout",
            "max.poll.interval.ms": "the worker's consumer sets it",
            "fetch.wait.max.ms": "use kafka.fetch-wait",
            "enable.idempotence": "outcomes, retries and dead letters are produced idempotently",
            "acks": "a record counts as published once every in-sync replica has it (acks=all)",
            "partitioner": "commands are keyed provider:account with murmur2, as upstream produces them",
            "message.timeout.ms": "the worker's producer sets it",
            "queue.buffering.max.messages": "the worker's producer sets it",
            "bootstrap.servers": "use kafka.bootstrap-servers",
            "security.protocol": "use kafka.security-protocol",
        ]
    }()

    /// The worker's own settings: group, identity, topics, bounds and timeouts.
    func readWorker(into worker: inout WorkerConfiguration) throws {
        worker.groupID = self.string("group-id", default: worker.groupID)
        worker.groupInstanceID = self.value("group-instance-id")
        worker.workerID = self.string("worker-id", default: worker.workerID)
        let commands = self.string("topics.commands", default: worker.topics.commands)
        worker.topics = TopicNames(
            commands: commands,
            outcomes: self.string("topics.outcomes", default: worker.topics.outcomes),
            deadLetters: self.string("topics.dead-letters", default: worker.topics.deadLetters),
            retryPrefix: self.value("topics.retry-prefix")
        )
        worker.maxInFlight = try self.int("max-in-flight", default: worker.maxInFlight, range: 1...Self.largestCount)
        if self.value("partition-concurrency") != nil {
            worker.partitionConcurrency = try self.int(
                "partition-concurrency", default: 1, range: 1...Self.largestCount)
        }
        worker.maxCommandBytes = try self.int(
            "max-command-bytes", default: worker.maxCommandBytes, range: 1_024...10_000_000)
        worker.consumerBufferCapacity = try self.int(
            "consumer-buffer", default: worker.consumerBufferCapacity, range: 2...1_000_000)
        worker.fetchWaitMax = try self.duration("kafka.fetch-wait", default: worker.fetchWaitMax)
        // librdkafka takes whole milliseconds and refuses a wait near its socket timeout (60 s).
        guard worker.fetchWaitMax >= .milliseconds(1), worker.fetchWaitMax <= .seconds(30) else {
            throw AppConfiguration.Invalid(key: "kafka.fetch-wait", message: "must be between 1ms and 30s")
        }
        if self.value("kafka.retry-fetch-wait") != nil {
            let wait = try self.duration("kafka.retry-fetch-wait", default: worker.fetchWaitMax)
            guard wait >= .milliseconds(1), wait <= .seconds(30) else {
                throw AppConfiguration.Invalid(key: "kafka.retry-fetch-wait", message: "must be between 1ms and 30s")
            }
            worker.retryFetchWaitMax = wait
        }
        worker.sessionTimeout = try self.duration("session-timeout", default: worker.sessionTimeout)
        // librdkafka's heartbeat is a third of it, in whole milliseconds; and a session may not
        // outlast `max.poll.interval.ms` (300 s).
        guard worker.sessionTimeout >= .seconds(1), worker.sessionTimeout <= .seconds(300) else {
            throw AppConfiguration.Invalid(
                key: "session-timeout", message: "must be between 1s and 300s, got \(worker.sessionTimeout.settingText)"
            )
        }
        worker.claimLease = try self.duration("claim-lease", default: worker.claimLease)
        worker.drainTimeout = try self.duration("drain-timeout", default: worker.drainTimeout, atLeast: .seconds(1))
        worker.stallTimeout = try self.duration("stall-timeout", default: worker.stallTimeout)
        worker.strandTimeout = try self.duration("stranded-partition-timeout", default: worker.strandTimeout)
        // Each check may ask the cluster about idle partitions: not more often than every second.
        guard worker.strandTimeout == .zero || worker.strandTimeout >= .seconds(3) else {
            throw AppConfiguration.Invalid(
                key: "stranded-partition-timeout", message: "must be 0s (never) or at least 3s")
        }
        worker.commitInterval = try self.duration("commit-interval", default: worker.commitInterval)
        // Zero would commit in a loop without a pause.
        guard worker.commitInterval >= .milliseconds(10), worker.commitInterval <= .seconds(60) else {
            throw AppConfiguration.Invalid(
                key: "commit-interval",
                message: "must be between 10ms and 60s, got \(worker.commitInterval.settingText)")
        }
        worker.handoverDelay = try self.duration("handover-delay", default: worker.handoverDelay)
    }

    /// `retry.*`: in-process attempts, backoff, tiers and the attempt budget.
    func retry(defaults: RetryPolicy) throws -> RetryPolicy {
        var retry = defaults
        if self.value("retry.tiers") != nil {
            retry.tiers = try self.list("retry.tiers").map { text in
                guard let tier = RetryTier(text) else {
                    throw AppConfiguration.Invalid(key: "retry.tiers", message: "\"\(text)\" is not a duration")
                }
                return tier
            }
        }
        self.note("retry.tiers", retry.tiers.map(\.name).joined(separator: ","))
        retry.maxAttempts = try self.int("retry.max-attempts", default: retry.maxAttempts, range: 1...1_000)
        retry.inProcessAttempts = try self.int(
            "retry.in-process-attempts", default: retry.inProcessAttempts, range: 1...1_000)
        retry.baseBackoff = try self.duration(
            "retry.base-backoff", default: retry.baseBackoff, atLeast: .milliseconds(1))
        retry.maxInProcessBackoff = try self.duration(
            "retry.max-in-process-backoff", default: retry.maxInProcessBackoff)
        return retry
    }

    /// `rate-limits.<id>` per provider, and the jitter the pacing absorbs.
    func readRateLimits(into worker: inout WorkerConfiguration) throws {
        var limits: [ProviderID: RateLimit] = [:]
        for provider in ProviderID.allCases {
            limits[provider] = try self.rateLimit(
                "rate-limits.\(provider.rawValue)", default: worker.rateLimits[provider])
        }
        worker.rateLimits = limits
        worker.rateLimitJitterAllowance = try self.duration(
            "rate-limit-jitter-allowance", default: worker.rateLimitJitterAllowance)
        guard worker.rateLimitJitterAllowance <= .seconds(60) else {
            throw AppConfiguration.Invalid(
                key: "rate-limit-jitter-allowance", message: "must be at most 60s (it widens each second's window)")
        }
    }
}
