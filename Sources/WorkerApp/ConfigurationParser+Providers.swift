import CancelCore

extension ConfigurationParser {
    /// `providers.*`: per provider its endpoint, timeout, user agent and credentials.
    func providers() throws -> [ProviderID: AppConfiguration.ProviderEndpoint] {
        var providers: [ProviderID: AppConfiguration.ProviderEndpoint] = [:]
        let sharedBaseURL = self.value("providers.base-url")
        for provider in ProviderID.allCases {
            let prefix = "providers.\(provider.rawValue)"
            var endpoint = AppConfiguration.ProviderEndpoint()
            endpoint.baseURL = self.value("\(prefix).base-url") ?? sharedBaseURL
            endpoint.timeout = try self.duration(
                "\(prefix).timeout", default: endpoint.timeout, atLeast: .milliseconds(100))
            endpoint.userAgent = self.value("\(prefix).user-agent")
            let listed = self.list("\(prefix).accounts")
            try self.checkNoUnlistedCredentials(prefix: prefix, listed: listed)
            for account in listed {
                guard let key = self.value("\(prefix).credentials.\(account).key") else {
                    throw AppConfiguration.Invalid(
                        key: "\(prefix).credentials.\(account).key",
                        message: "account \(account) is listed but has no key")
                }
                endpoint.accounts[account] = ProviderCredentials(
                    key: key, secret: self.value("\(prefix).credentials.\(account).secret"))
            }
            if let key = self.value("\(prefix).default-key") {
                guard provider != .futures else {
                    throw AppConfiguration.Invalid(
                        key: "\(prefix).default-key", message: "futures keys belong to each user: list them per account"
                    )
                }
                endpoint.defaultCredentials = ProviderCredentials(
                    key: key, secret: self.value("\(prefix).default-secret"))
            }
            providers[provider] = endpoint
        }
        return providers
    }

    /// Credentials given (as an environment variable) for an account that `<prefix>.accounts`
    /// does not list are refused: read only for listed accounts, they were dropped without a
    /// word, and the worker then had no such account.
    func checkNoUnlistedCredentials(prefix: String, listed: [String]) throws {
        let variablePrefix = ConfigOption.environmentName(for: "\(prefix).credentials.")
        let known = Set(
            listed.flatMap { account in
                ["key", "secret"].map { ConfigOption.environmentName(for: "\(prefix).credentials.\(account).\($0)") }
            })
        let unlisted = self.environment.keys.filter { name in
            name.hasPrefix(variablePrefix) && (name.hasSuffix("_KEY") || name.hasSuffix("_SECRET"))
                && !known.contains(name)
        }
        if let name = unlisted.sorted().first {
            throw AppConfiguration.Invalid(
                key: "\(prefix).accounts",
                message:
                    "\(name) gives credentials for an account \(prefix).accounts does not list (listed: \(listed.isEmpty ? "none" : listed.joined(separator: ", ")))"
            )
        }
    }

    /// A claim must outlive the call made under it: the send-time guard renews the lease right
    /// before a call leaves, so the call's own timeout is what the lease must cover (plus a
    /// margin for the ledger write and clocks).
    static func checkClaimLease(
        _ claimLease: Duration, providers: [ProviderID: AppConfiguration.ProviderEndpoint]
    ) throws {
        if let (provider, endpoint) = providers.max(by: { $0.value.timeout < $1.value.timeout }),
            claimLease < endpoint.timeout + .seconds(2)
        {
            throw AppConfiguration.Invalid(
                key: "claim-lease",
                message:
                    "\(claimLease) is shorter than the longest provider timeout (providers.\(provider.rawValue).timeout = \(endpoint.timeout)) + 2s: a claim must outlive the call made under it"
            )
        }
    }
}
