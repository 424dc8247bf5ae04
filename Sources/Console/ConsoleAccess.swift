public import CancelCore
import Foundation
public import Hummingbird

/// The request context of every console route: who is signed in.
public struct ConsoleContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The operator as the audit records them: the basic-auth user name, or `bearer-token`.
    public var operatorName = ""

    public init(source: Source) {
        self.coreContext = .init(source: source)
    }

    /// Forms are small; anything larger is not ours.
    public var maxUploadSize: Int { 64 * 1024 }
}

/// No anonymous access: every route needs `Authorization: Bearer <console.token>`, or basic
/// auth whose password is the token (the user name names the operator in the audit). Anything
/// else gets 401 with a basic-auth challenge, so a browser asks for it. The token is compared
/// in constant time and never logged.
public struct ConsoleAccess: RouterMiddleware {
    public typealias Context = ConsoleContext
    let token: Secret

    public init(token: Secret) {
        self.token = token
    }

    public func handle(
        _ request: Request, context: ConsoleContext, next: (Request, ConsoleContext) async throws -> Response
    ) async throws -> Response {
        guard let who = Self.operatorName(authorization: request.headers[.authorization], token: self.token) else {
            var response = Page.response(
                status: .unauthorized,
                html: Page.bare(
                    title: "Sign in",
                    body: "<h1>401: sign in</h1><p>The console needs its token: basic auth (any user name, the token "
                        + "as password) or <code>Authorization: Bearer …</code>.</p>"))
            response.headers[.wwwAuthenticate] = #"Basic realm="cancel-worker console", charset="UTF-8""#
            return response
        }
        var context = context
        context.operatorName = who
        return try await next(request, context)
    }

    /// Who the `Authorization` header names, if it carries the token: `bearer-token` for a bearer
    /// token, the user name for basic auth. Nil: no access.
    public static func operatorName(authorization: String?, token: Secret) -> String? {
        guard let authorization, !token.isEmpty else { return nil }
        let parts = authorization.split(separator: " ", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return nil }
        switch parts[0].lowercased() {
        case "bearer":
            return Self.same(parts[1].trimmingCharacters(in: .whitespaces), token.reveal()) ? "bearer-token" : nil
        case "basic":
            guard let data = Data(base64Encoded: parts[1].trimmingCharacters(in: .whitespaces)),
                let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":")
            else { return nil }
            let user = String(text[..<colon])
            guard Self.same(String(text[text.index(after: colon)...]), token.reveal()) else { return nil }
            return Self.cleanName(user)
        default:
            return nil
        }
    }

    /// The user name as logged: letters, digits and `.-_@` only, at most 64 characters; empty
    /// becomes `basic-auth`.
    static func cleanName(_ user: String) -> String {
        let kept = String(user.filter { $0.isASCII && ($0.isLetter || $0.isNumber || ".-_@".contains($0)) }.prefix(64))
        return kept.isEmpty ? "basic-auth" : kept
    }

    /// Compares in time that depends on the lengths only, not on where the first difference is.
    static func same(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for index in 0..<max(x.count, y.count) {
            difference |= (index < x.count ? x[index] : 0) ^ (index < y.count ? y[index] : 0)
        }
        return difference == 0
    }
}
