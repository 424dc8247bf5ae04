public import AsyncHTTPClient
public import CancelCore
import Foundation
public import Logging
import NIOCore
import NIOHTTP1

/// A provider adapter: the pure `ProviderAPI` rules plus the transport, over the shared
/// `HTTPClient`. Never throws: a transport failure is `unknown` (the request may have reached
/// the provider), with a reason that names neither credentials nor signatures.
public struct HTTPCancelProvider<API: ProviderAPI>: CancelProvider {
    public let api: API
    public let settings: ProviderSettings
    let client: HTTPClient
    let logger: Logger

    public init(api: API, settings: ProviderSettings, client: HTTPClient, logger: Logger) {
        self.api = api
        self.settings = settings
        self.client = client
        self.logger = logger
    }

    public var id: ProviderID { self.api.id }

    public func knowsAccount(_ account: String) -> Bool {
        self.credentials(for: account) != nil
    }

    private func credentials(for account: String) -> ProviderCredentials? {
        if self.api.id == .futures { return self.settings.accounts[account] }
        return self.settings.credentials(for: account)
    }

    public func cancel(_ request: CancelRequest) async -> ProviderCallResult {
        guard let credentials = self.credentials(for: request.account) else {
            return ProviderCallResult(
                classification: .configuration, answer: ProviderAnswer(),
                reason: "no credentials for account \(request.account) at \(self.api.id)"
            )
        }
        switch self.api.prepare(request, credentials: credentials, settings: self.settings, now: Date()) {
        case .answer(let result):
            return result
        case .send(let call):
            switch await self.send(call) {
            case .success(let response):
                return self.api.classify(response, for: request, now: Date())
            case .failure(let failure):
                return ProviderCallResult(classification: .unknown, answer: ProviderAnswer(), reason: failure.reason)
            }
        }
    }

    private func send(_ call: ProviderHTTPRequest) async -> Result<ProviderHTTPResponse, TransportFailure> {
        var request = HTTPClientRequest(url: self.settings.baseURL.trimmingSuffix("/") + call.path)
        request.method = HTTPMethod(rawValue: call.method)
        for header in call.headers {
            request.headers.add(name: header.name, value: header.value)
        }
        if let body = call.body {
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        do {
            let response = try await self.client.execute(request, timeout: .nanoseconds(self.settings.timeout.nanoseconds))
            let body = try await response.body.collect(upTo: self.settings.maxResponseBytes)
            var headers: [String: String] = [:]
            for header in response.headers { headers[header.name.lowercased()] = header.value }
            return .success(ProviderHTTPResponse(status: Int(response.status.code), headers: headers, body: Array(body.readableBytesView)))
        } catch is NIOTooManyBytesError {
            return .failure(TransportFailure("\(self.api.id) answered more than \(self.settings.maxResponseBytes) bytes"))
        } catch let error as HTTPClientError {
            return .failure(TransportFailure("\(self.api.id) \(call.method) \(call.path): \(Self.describe(error))"))
        } catch {
            // NIO channel errors (connection reset, refused) describe themselves without secrets.
            return .failure(TransportFailure("\(self.api.id) \(call.method) \(call.path): \(error)"))
        }
    }

    /// Transport errors as operators read them.
    private static func describe(_ error: HTTPClientError) -> String {
        switch error {
        case .deadlineExceeded: "no answer before the timeout (the cancel may or may not have happened)"
        case .readTimeout: "read timeout (the cancel may or may not have happened)"
        case .connectTimeout: "connect timeout"
        case .remoteConnectionClosed: "the connection was closed before the answer was complete"
        case .cancelled: "call cancelled"
        default: "\(error)"
        }
    }

    struct TransportFailure: Error {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = self.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        self.hasSuffix(suffix) ? String(self.dropLast(suffix.count)) : self
    }
}
