import CancelClient
import Foundation
import Kafka
import Testing

/// Review finding (upstream client): `KafkaSecurity` said its password is "never logged or
/// described", but Swift's default description printed every field, so a service that logged
/// its `CancelClientConfiguration` (or dumped it) logged its SASL password.
@Suite("The client's configuration never shows a secret")
struct ConfigurationSecretsTests {
    @Test(
        "regression: described, debug-printed, dumped or mirrored, the SASL password and secret raw properties read [REDACTED]"
    )
    func noSecretInText() {
        var configuration = CancelClientConfiguration(bootstrapServers: "kafka-1:9092")
        configuration.kafka.security = KafkaSecurity(
            protocol: "sasl_ssl", saslMechanism: "SCRAM-SHA-512", saslUsername: "svc-upstream",
            saslPassword: "hunter2-sasl-secret")
        configuration.kafka.additionalProperties["ssl.key.password"] = "keypass-raw-secret"
        var dumped = ""
        dump(configuration, to: &dumped)
        var dumpedOptions = ""
        dump(configuration.kafka, to: &dumpedOptions)
        let texts = [
            "\(configuration)", String(reflecting: configuration), "\(configuration.kafka)",
            String(reflecting: configuration.kafka), "\(configuration.kafka.security)", dumped, dumpedOptions,
            "\(Mirror(reflecting: configuration.kafka.security).children.map { "\($0.value)" })",
        ]
        for text in texts {
            #expect(!text.contains("hunter2") && !text.contains("keypass"), "\(text)")
        }
        #expect("\(configuration.kafka.security)".contains("saslUsername: svc-upstream"))
        #expect("\(configuration.kafka)".contains("[REDACTED]"))
    }
}
