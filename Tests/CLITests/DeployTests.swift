import CancelCore
import Foundation
import Testing
import WorkerApp

/// deploy/ must describe the binary that exists: its commands, flags, ports, variables and
/// topic names. The YAML is parsed with Python's yaml (a real parser).
@Suite("deploy/ matches the binary")
struct DeployTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func yaml(_ path: String) async throws -> [[String: Any]] {
        let (status, output) = try await runProgram(
            "/usr/bin/env",
            [
                "python3", "-c",
                "import sys, yaml, json; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]))",
                root.appendingPathComponent(path).path,
            ])
        #expect(status == 0, "\(path) parses as YAML")
        return (try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]]) ?? []
    }

    /// Every `--flag` a subcommand's help mentions.
    static func help(_ command: String) async throws -> (status: Int32, text: String) {
        let (status, output) = try await runProgram(ChildProcess.cancelWorkerPath, [command, "--help"])
        return (status, output)
    }

    static let defaultTopics =
        [TopicNames.default.commands, TopicNames.default.outcomes, TopicNames.default.deadLetters]
        + RetryPolicy().tiers.map { TopicNames.default.retryTopic($0.name) }

    @Test("compose.yaml: KRaft Kafka, PostgreSQL, topic init with the default names, the sandbox, three workers")
    func compose() async throws {
        let compose = try #require(try await Self.yaml("deploy/compose.yaml").first)
        let services = try #require(compose["services"] as? [String: [String: Any]])
        #expect(Set(services.keys) == ["kafka", "topics", "postgres", "sandbox", "worker"])
        let kafka = try #require(services["kafka"]?["environment"] as? [String: String])
        #expect(kafka["KAFKA_PROCESS_ROLES"]?.contains("controller") == true, "KRaft mode")
        #expect(!kafka.keys.contains { $0.contains("ZOOKEEPER") })

        let script = (services["topics"]?["command"] as? [String])?.joined(separator: "\n") ?? ""
        let listed =
            script.components(separatedBy: "for topic in ").last?.components(separatedBy: ";").first?.split(
                separator: " "
            ).map(String.init) ?? []
        #expect(Set(listed) == Set(Self.defaultTopics), "the topics are the worker's defaults")
        #expect(script.contains("--partitions 12"))

        let worker = try #require(services["worker"])
        #expect((worker["deploy"] as? [String: Any])?["replicas"] as? Int == 3)
        let command = try #require(worker["command"] as? [String])
        #expect(try await Self.help(command[0]).status == 0, "`\(command[0])` is a subcommand")
        let environment = try #require(worker["environment"] as? [String: String])
        for name in environment.keys { #expect(ConfigOption.isKnownEnvironmentName(name), "\(name) is a setting") }
        #expect(environment["CANCEL_WORKER_PROVIDERS_BASE_URL"] == "http://sandbox:8080")
        let drain = try #require(environment["CANCEL_WORKER_DRAIN_TIMEOUT"].flatMap(Duration.init(humanReadable:)))
        let grace = try #require((worker["stop_grace_period"] as? String).flatMap(Duration.init(humanReadable:)))
        let budget = WorkerApplication.shutdownBudget(drainTimeout: drain)
        #expect(grace > budget.graceful + budget.cancellation, "docker waits longer than a shutdown may take")
        _ = try await AppConfiguration.load(environment: environment)

        let sandbox = try #require(services["sandbox"]?["command"] as? [String])
        let sandboxHelp = try await Self.help(sandbox[0])
        for flag in sandbox.filter({ $0.hasPrefix("--") }) {
            #expect(sandboxHelp.text.contains(flag), "sandbox accepts \(flag)")
        }
        #expect(sandbox.contains("8080") && (services["sandbox"]?["ports"] as? [String])?.first == "8080:8080")
        // The sandbox is a dev subcommand: its image is built with the DevTools trait, the workers' without.
        let traits = { (service: String) in
            ((services[service]?["build"] as? [String: Any])?["args"] as? [String: String])?["TRAITS"]
        }
        #expect(traits("sandbox") == "--traits DevTools")
        #expect(
            (worker["build"] as? [String: Any]) != nil && traits("worker") == nil, "workers run the production image")
    }

    @Test("the worker binary runs on jemalloc, which it links; the image builds with its headers and ships its library")
    func jemalloc() async throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("deploy/Dockerfile"), encoding: .utf8)
        let stages = text.components(separatedBy: "FROM debian:")
        let install: (String) -> String = { stage in
            stage.split(separator: "\n").first { $0.contains("apt-get install") }.map(String.init) ?? ""
        }
        #expect(install(stages[0]).contains("libjemalloc-dev"), "the build stage links it")
        #expect(install(try #require(stages.last)).contains("libjemalloc2"), "the runtime stage installs it")
        #expect(!text.contains("LD_PRELOAD"), "nothing to preload: the binary links it")
        // jemalloc's statistics at exit print only if jemalloc served the process; no LD_PRELOAD.
        let run = try await runCancelWorker(
            ["config", "--set", "ledger.url=memory:"], environment: ["MALLOC_CONF": "stats_print:true"])
        #expect(run.status == 0, "\(run.errors)")
        #expect(run.output.contains("kafka.fetch-wait"), "the worker did its work")
        #expect(run.errors.contains("jemalloc statistics"), "jemalloc served the worker's allocations")
    }

    @Test("Dockerfile: multi-stage, slim runtime with librdkafka1, non-root, the worker's port")
    func dockerfile() throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("deploy/Dockerfile"), encoding: .utf8)
        let froms = text.split(separator: "\n").filter { $0.hasPrefix("FROM ") }
        #expect(froms.count == 2 && froms[0].contains("swift:") && froms[1].contains("slim"))
        #expect(text.contains("librdkafka-dev") && text.contains("librdkafka1"))
        let user = text.split(separator: "\n").first { $0.hasPrefix("USER ") }.map { String($0.dropFirst(5)) } ?? "root"
        #expect(user != "root" && !user.hasPrefix("0"), "runs as a non-root user")
        #expect(text.contains(#"ENTRYPOINT ["/usr/local/bin/cancel-worker"]"#) && text.contains(#"CMD ["run"]"#))
        let build = text.split(separator: "\n").first { $0.hasPrefix("RUN swift build") } ?? ""
        #expect(
            text.contains("ARG TRAITS=--disable-default-traits") && build.contains("--product cancel-worker")
                && build.contains(" $TRAITS"),
            "the production image builds without the DevTools trait: no dev tooling in it")
        let port = ConfigOption.all.first { $0.key == "http.port" }!.defaultValue
        #expect(text.contains("EXPOSE \(port)"))
        // Review finding: the image's SQLite ledger sat in the container's own layer, gone with it.
        let ledger = text.components(separatedBy: "CANCEL_WORKER_LEDGER_URL=sqlite:").dropFirst().first?.prefix {
            !$0.isWhitespace
        }
        let volumes = text.split(separator: "\n").filter { $0.hasPrefix("VOLUME ") }.map { $0.dropFirst(7) }
        #expect(
            ledger.map { path in volumes.contains { path.hasPrefix($0 + "/") } } ?? true,
            "the default ledger \(ledger ?? "") is on a volume: \(volumes)")
        for line in text.split(separator: "\n") where line.contains("CANCEL_WORKER_") {
            for name in line.split(whereSeparator: { " =\\".contains($0) }).filter({ $0.hasPrefix("CANCEL_WORKER_") }) {
                #expect(ConfigOption.isKnownEnvironmentName(String(name)), "\(name)")
            }
        }
    }

    /// SwiftPM loads every target of the manifest, the tests' and benchmarks' too, even for one
    /// product: a directory the image does not copy is a build that fails on its first line.
    @Test("review finding: the image copies every target's directory before swift build (before: no Benchmarks, Tests)")
    func dockerfileCopiesEveryTarget() async throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("deploy/Dockerfile"), encoding: .utf8)
        let lines = text.split(separator: "\n").map(String.init)
        let build = try #require(lines.firstIndex { $0.hasPrefix("RUN swift build") })
        let copied = Set(
            lines[..<build].filter { $0.hasPrefix("COPY ") && !$0.contains("--from") }.flatMap {
                $0.split(separator: " ").dropFirst().dropLast().map { String($0.split(separator: "/")[0]) }
            })
        let (status, output) = try await runProgram(
            "/usr/bin/env",
            [
                "swift", "package", "--package-path", Self.root.path, "--scratch-path",
                FileManager.default.temporaryDirectory.appendingPathComponent("cw-dump-\(UUID())").path,
                "dump-package",
            ])
        #expect(status == 0, "\(output.suffix(500))")
        let manifest = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        let targets = try #require(manifest["targets"] as? [[String: Any]])
        #expect(targets.count > 10)
        for target in targets {
            let name = try #require(target["name"] as? String)
            let path = (target["path"] as? String) ?? ((target["type"] as? String) == "test" ? "Tests" : "Sources")
            let top = String(path.split(separator: "/")[0])
            #expect(copied.contains(top), "target \(name) lives under \(top)/, which the image does not copy")
        }
        #expect(copied.contains("Package.swift"))
        // The build context leaves out local build folders (gigabytes, and another machine's).
        let ignore = try String(
            contentsOf: Self.root.appendingPathComponent("deploy/Dockerfile.dockerignore"), encoding: .utf8)
        #expect(ignore.split(separator: "\n").contains { $0.hasPrefix(".build") }, "\(ignore)")
    }

    @Test("k8s: probes, resources, grace period, secrets, PDB and KEDA agree with each other and the binary")
    func kubernetes() async throws {
        let configMap = try #require(try await Self.yaml("deploy/k8s/configmap.yaml").first)
        let data = try #require(configMap["data"] as? [String: String])
        for name in data.keys { #expect(ConfigOption.isKnownEnvironmentName(name), "\(name) is a setting") }
        // With the credentials the secret documents (placeholders here), the configuration loads.
        let secretText = try String(
            contentsOf: Self.root.appendingPathComponent("deploy/k8s/secrets.example.yaml"), encoding: .utf8)
        let documented = secretText.components(separatedBy: "--from-literal=").dropFirst().map {
            String($0.prefix { $0 != "=" })
        }.filter { $0 != "url" }
        for name in documented { #expect(ConfigOption.isKnownEnvironmentName(name), "\(name) is a setting") }
        _ = try await AppConfiguration.load(
            environment: data.merging(documented.map { ($0, "placeholder") }) { old, _ in old })
        #expect(data["CANCEL_WORKER_TOPICS_COMMANDS"] == TopicNames.default.commands)
        #expect(data["CANCEL_WORKER_TOPICS_DEAD_LETTERS"] == TopicNames.default.deadLetters)

        let deployment = try #require(try await Self.yaml("deploy/k8s/deployment.yaml").first)
        let spec = try #require(deployment["spec"] as? [String: Any])
        let template = try #require(spec["template"] as? [String: Any])
        let podSpec = try #require(template["spec"] as? [String: Any])
        let container = try #require((podSpec["containers"] as? [[String: Any]])?.first)
        #expect((container["args"] as? [String])?.first == "run")
        let port = try #require((container["ports"] as? [[String: Any]])?.first)
        #expect(port["name"] as? String == "metrics")
        #expect(String(port["containerPort"] as? Int ?? 0) == data["CANCEL_WORKER_HTTP_PORT"])
        let annotations = try #require((template["metadata"] as? [String: Any])?["annotations"] as? [String: String])
        #expect(
            annotations["prometheus.io/scrape"] == "true"
                && annotations["prometheus.io/port"] == data["CANCEL_WORKER_HTTP_PORT"])
        #expect(annotations["prometheus.io/path"] == "/metrics")
        let liveness = (container["livenessProbe"] as? [String: Any])?["httpGet"] as? [String: Any]
        let readiness = (container["readinessProbe"] as? [String: Any])?["httpGet"] as? [String: Any]
        #expect(liveness?["path"] as? String == "/health/live" && readiness?["path"] as? String == "/health/ready")
        let resources = try #require(container["resources"] as? [String: Any])
        #expect(resources["requests"] != nil && resources["limits"] != nil)
        let grace = try #require(podSpec["terminationGracePeriodSeconds"] as? Int)
        let drain = try #require(data["CANCEL_WORKER_DRAIN_TIMEOUT"].flatMap(Duration.init(humanReadable:)))
        let budget = WorkerApplication.shutdownBudget(drainTimeout: drain)
        #expect(
            Duration.seconds(grace) > budget.graceful + budget.cancellation,
            "Kubernetes waits longer than a shutdown may take")
        #expect((podSpec["securityContext"] as? [String: Any])?["runAsNonRoot"] as? Bool == true)
        // Pod Security "restricted" also asks for the runtime's default seccomp profile.
        #expect(
            ((podSpec["securityContext"] as? [String: Any])?["seccompProfile"] as? [String: String])?["type"]
                == "RuntimeDefault")
        // KEDA owns the replica count: a fixed one would reset a scaled-out fleet on every apply.
        #expect(spec["replicas"] == nil, "replicas are KEDA's (keda-scaledobject.yaml)")

        let secrets = try await Self.yaml("deploy/k8s/secrets.example.yaml").compactMap {
            ($0["metadata"] as? [String: Any])?["name"] as? String
        }
        let envFrom = container["envFrom"] as? [[String: [String: String]]] ?? []
        #expect(
            envFrom.compactMap { $0["configMapRef"]?["name"] } == [
                (configMap["metadata"] as? [String: Any])?["name"] as? String ?? "?"
            ])
        for name in envFrom.compactMap({ $0["secretRef"]?["name"] }) { #expect(secrets.contains(name)) }
        for variable in container["env"] as? [[String: Any]] ?? [] {
            #expect(ConfigOption.isKnownEnvironmentName(variable["name"] as? String ?? ""), "\(variable)")
            if let name = ((variable["valueFrom"] as? [String: Any])?["secretKeyRef"] as? [String: Any])?["name"]
                as? String
            {
                #expect(secrets.contains(name))
            }
        }

        let labels = (spec["selector"] as? [String: Any])?["matchLabels"] as? [String: String]
        let pdb = try #require(try await Self.yaml("deploy/k8s/pdb.yaml").first)
        #expect(
            ((pdb["spec"] as? [String: Any])?["selector"] as? [String: Any])?["matchLabels"] as? [String: String]
                == labels)

        let scaled = try #require(try await Self.yaml("deploy/k8s/keda-scaledobject.yaml").first)
        let scaledSpec = try #require(scaled["spec"] as? [String: Any])
        #expect(
            (scaledSpec["scaleTargetRef"] as? [String: Any])?["name"] as? String
                == (deployment["metadata"] as? [String: Any])?["name"] as? String)
        let trigger = try #require(
            (scaledSpec["triggers"] as? [[String: Any]])?.first?["metadata"] as? [String: String])
        #expect(trigger["consumerGroup"] == data["CANCEL_WORKER_GROUP_ID"])
        #expect(trigger["topic"] == data["CANCEL_WORKER_TOPICS_COMMANDS"])
        #expect(trigger["bootstrapServers"] == data["CANCEL_WORKER_KAFKA_BOOTSTRAP_SERVERS"])
        let compose = try String(contentsOf: Self.root.appendingPathComponent("deploy/compose.yaml"), encoding: .utf8)
        let partitions =
            Int(compose.components(separatedBy: "--partitions ").last?.split(separator: " ").first ?? "") ?? 0
        #expect((scaledSpec["maxReplicaCount"] as? Int ?? 99) <= partitions, "no more replicas than partitions")

        let kustomization = try #require(try await Self.yaml("deploy/k8s/kustomization.yaml").first)
        let listed = Set(kustomization["resources"] as? [String] ?? [])
        let files = Set(
            try FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent("deploy/k8s").path)
                .filter { $0 != "kustomization.yaml" })
        // The secrets' example is documentation: applied with the rest, its empty Secrets would
        // delete the keys an operator applied into them since.
        #expect(listed == files.filter { !$0.hasSuffix(".example.yaml") })
        #expect(files.contains("secrets.example.yaml"))

        // The operator's Prometheus scrapes what a PodMonitor selects (it ignores annotations).
        let monitor = try #require(try await Self.yaml("deploy/k8s/podmonitor.yaml").first)
        #expect(monitor["kind"] as? String == "PodMonitor")
        let monitorSpec = try #require(monitor["spec"] as? [String: Any])
        #expect(
            (monitorSpec["selector"] as? [String: Any])?["matchLabels"] as? [String: String] == labels)
        let endpoint = try #require((monitorSpec["podMetricsEndpoints"] as? [[String: Any]])?.first)
        #expect(endpoint["port"] as? String == port["name"] as? String && endpoint["path"] as? String == "/metrics")
    }

    @Test("the README's configuration reference is the binary's")
    func readmeReference() async throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let section = readme.components(separatedBy: "<!-- configuration-reference:start -->").last?.components(
            separatedBy: "<!-- configuration-reference:end -->"
        ).first
        let (status, printed) = try await runProgram(ChildProcess.cancelWorkerPath, ["config", "--reference"])
        #expect(status == 0)
        #expect(
            section?.trimmingCharacters(in: .whitespacesAndNewlines)
                == printed.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(printed.trimmingCharacters(in: .whitespacesAndNewlines) == ConfigOption.markdownReference)
    }
}
