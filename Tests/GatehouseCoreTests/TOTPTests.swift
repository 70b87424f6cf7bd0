import Foundation
import GatehouseCore
import Testing

@Suite("TOTP (RFC 6238)")
struct TOTPTests {
    static let sha1Seed = Array("12345678901234567890".utf8)
    static let sha256Seed = Array("12345678901234567890123456789012".utf8)
    static let sha512Seed = Array("1234567890123456789012345678901234567890123456789012345678901234".utf8)

    /// RFC 6238, Appendix B: time, then the SHA-1, SHA-256 and SHA-512 codes (8 digits).
    static let vectors: [(TimeInterval, String, String, String)] = [
        (59, "94287082", "46119246", "90693936"),
        (1_111_111_109, "07081804", "68084774", "25091201"),
        (1_111_111_111, "14050471", "67062674", "99943326"),
        (1_234_567_890, "89005924", "91819424", "93441116"),
        (2_000_000_000, "69279037", "90698825", "38618901"),
        (20_000_000_000, "65353130", "77737706", "47863826"),
    ]

    @Test("the RFC 6238 test vectors for SHA-1, SHA-256 and SHA-512")
    func rfcVectors() {
        for (time, sha1, sha256, sha512) in Self.vectors {
            let date = Date(timeIntervalSince1970: time)
            #expect(TOTP(secret: Self.sha1Seed, digits: 8, algorithm: .sha1).code(at: date) == sha1, "T=\(time)")
            #expect(TOTP(secret: Self.sha256Seed, digits: 8, algorithm: .sha256).code(at: date) == sha256, "T=\(time)")
            #expect(TOTP(secret: Self.sha512Seed, digits: 8, algorithm: .sha512).code(at: date) == sha512, "T=\(time)")
        }
    }

    @Test("one step of drift either way is accepted, two are not")
    func drift() {
        let totp = TOTP(secret: Self.sha1Seed)
        let now = Date(timeIntervalSince1970: 1_795_600_815)
        let step = totp.step(at: now)
        #expect(totp.verify(totp.code(step: step), at: now, lastUsedStep: nil) == step)
        #expect(totp.verify(totp.code(step: step - 1), at: now, lastUsedStep: nil) == step - 1)
        #expect(totp.verify(totp.code(step: step + 1), at: now, lastUsedStep: nil) == step + 1)
        #expect(totp.verify(totp.code(step: step - 2), at: now, lastUsedStep: nil) == nil)
        #expect(totp.verify(totp.code(step: step + 2), at: now, lastUsedStep: nil) == nil)
    }

    @Test("a code is good once: its step and earlier ones are refused after use")
    func replay() {
        let totp = TOTP(secret: Self.sha1Seed)
        let now = Date(timeIntervalSince1970: 1_795_600_815)
        let step = totp.step(at: now)
        let code = totp.code(step: step)
        #expect(totp.verify(code, at: now, lastUsedStep: step) == nil)
        #expect(totp.verify(totp.code(step: step - 1), at: now, lastUsedStep: step - 1) == nil)
        #expect(totp.verify(totp.code(step: step + 1), at: now, lastUsedStep: step) == step + 1)
    }

    @Test("malformed codes are refused")
    func malformed() {
        let totp = TOTP(secret: Self.sha1Seed)
        let now = Date()
        for code in ["", "12345", "1234567", "abcdef", "12 34 5", "١٢٣٤٥٦"] {
            #expect(totp.verify(code, at: now, lastUsedStep: nil) == nil, "\(code)")
        }
        #expect(totp.verify(" " + totp.code(at: now) + " ", at: now, lastUsedStep: nil) != nil)
    }

    @Test("base32 round trip and the provisioning URI")
    func base32() throws {
        #expect(Base32.encode(Array("foobar".utf8)) == "MZXW6YTBOI")
        #expect(Base32.decode("MZXW6YTBOI") == Array("foobar".utf8))
        #expect(Base32.decode("mzxw6ytboi======") == Array("foobar".utf8))
        #expect(Base32.decode("1NVALID") == nil)
        let secret = TOTP.generateSecret()
        #expect(secret.count == 20)
        #expect(Base32.decode(Base32.encode(secret)) == secret)
        let uri = TOTP(secret: Self.sha1Seed).provisioningURI(account: "ada lovelace", issuer: "Gatehouse")
        #expect(
            uri
                == "otpauth://totp/Gatehouse:ada%20lovelace?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Gatehouse&algorithm=SHA1&digits=6&period=30"
        )
    }
}

@Suite("Challenges and attempt limits")
struct ChallengeBookTests {
    let now = Date(timeIntervalSince1970: 1_795_600_800)

    func challenge(_ kind: Challenge.Kind = .stepUp, id: String = "c1", approvers: [String] = []) -> Challenge {
        Challenge(
            id: id, kind: kind, user: "ada", session: "s1", connection: "prod", statement: "delete from t where id = 1",
            fingerprint: "f", rules: ["r"], reason: "because", approvers: approvers, createdAt: now,
            expiresAt: now.addingTimeInterval(120))
    }

    @Test("a step-up is verified by its own user only, once")
    func stepUp() throws {
        var book = ChallengeBook()
        book.add(challenge())
        #expect(throws: ChallengeError(.notYours, "challenge c1 belongs to another user's session")) {
            _ = try book.verify("c1", by: "bob", codeAccepted: true, at: now)
        }
        let verified = try book.verify("c1", by: "ada", codeAccepted: true, at: now)
        #expect(verified.state == .verified)
        #expect(verified.state.releases)
        #expect(throws: ChallengeError.self) { _ = try book.verify("c1", by: "ada", codeAccepted: true, at: now) }
        #expect(throws: ChallengeError.self) { _ = try book.verify("nope", by: "ada", codeAccepted: true, at: now) }
    }

    @Test("wrong codes count down, then the challenge fails")
    func attempts() throws {
        var book = ChallengeBook(maximumAttempts: 3)
        book.add(challenge())
        for left in [2, 1] {
            do {
                _ = try book.verify("c1", by: "ada", codeAccepted: false, at: now)
                Issue.record("a wrong code was accepted")
            } catch let error as ChallengeError {
                #expect(error.code == .wrongCode)
                #expect(error.description.contains("\(left) attempt"))
            }
        }
        #expect(throws: ChallengeError.self) { _ = try book.verify("c1", by: "ada", codeAccepted: false, at: now) }
        #expect(book.challenge("c1")?.state == .failed)
        #expect(book.challenge("c1")?.state.releases == false)
    }

    @Test("approvals: named users and groups only, never the requester; denial keeps who and why")
    func approvals() throws {
        var book = ChallengeBook()
        book.add(challenge(.approve, id: "a1", approvers: ["bob", "group:dba"]))
        book.add(challenge(.approve, id: "a2", approvers: ["ada", "bob"]))
        #expect(throws: ChallengeError.self) {
            _ = try book.decide("a1", approve: true, by: "eve", groups: ["developer"], reason: nil, at: now)
        }
        do {
            _ = try book.decide("a2", approve: true, by: "ada", groups: [], reason: nil, at: now)
            Issue.record("self-approval was accepted")
        } catch let error as ChallengeError {
            #expect(error.code == .selfApproval)
        }
        let approved = try book.decide("a1", approve: true, by: "carol", groups: ["dba"], reason: nil, at: now)
        #expect(approved.state == .approved)
        #expect(approved.decidedBy == "carol")
        let denied = try book.decide("a2", approve: false, by: "bob", groups: [], reason: "not today", at: now)
        #expect(denied.state == .denied)
        #expect(denied.decisionReason == "not today")
        #expect(throws: ChallengeError.self) { _ = try book.verify("a1", by: "ada", codeAccepted: true, at: now) }
    }

    @Test("deadlines: pending challenges expire, decided ones do not; cancel ends a pending one")
    func expiry() throws {
        var book = ChallengeBook()
        book.add(challenge(id: "c1"))
        book.add(challenge(id: "c2"))
        book.add(challenge(id: "c3"))
        _ = try book.verify("c2", by: "ada", codeAccepted: true, at: now)
        #expect(book.cancel("c3", reason: "client cancelled", at: now)?.state == .cancelled)
        #expect(book.expire(at: now.addingTimeInterval(119)).isEmpty)
        #expect(book.expire(at: now.addingTimeInterval(120)).map(\.id) == ["c1"])
        #expect(throws: ChallengeError.self) {
            _ = try book.verify("c1", by: "ada", codeAccepted: true, at: now.addingTimeInterval(121))
        }
        book.prune(olderThan: 60, at: now.addingTimeInterval(500))
        #expect(book.challenges.isEmpty)
    }

    @Test("too many wrong codes lock a user out for a while")
    func lockout() throws {
        var limiter = AttemptLimiter(limit: 3, window: 60, lockout: 300)
        #expect(limiter.recordFailure("ada", at: now) == nil)
        #expect(limiter.recordFailure("ada", at: now.addingTimeInterval(1)) == nil)
        let until = limiter.recordFailure("ada", at: now.addingTimeInterval(2))
        #expect(until == now.addingTimeInterval(302))
        #expect(throws: ChallengeError.self) { try limiter.check("ada", at: now.addingTimeInterval(100)) }
        try limiter.check("ada", at: now.addingTimeInterval(303))
        try limiter.check("bob", at: now)
        // Failures spread beyond the window do not add up.
        var slow = AttemptLimiter(limit: 2, window: 60, lockout: 300)
        #expect(slow.recordFailure("ada", at: now) == nil)
        #expect(slow.recordFailure("ada", at: now.addingTimeInterval(61)) == nil)
    }
}
