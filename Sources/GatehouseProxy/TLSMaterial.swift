import Crypto
import Foundation
import GatehouseAuth
import GatehouseConfig
import NIOSSL
import SwiftASN1
import X509

/// TLS contexts for the client side (our certificate) and for each upstream connection.
public enum TLSMaterial {
    /// The server context for clients: the configured certificate, or a self-signed one generated once
    /// into `dataDirectory/tls/`.
    public static func clientContext(config: GatehouseConfig) throws -> NIOSSLContext {
        let certificatePath: String
        let keyPath: String
        if let certificate = config.clientTLS.certificateFile, let key = config.clientTLS.keyFile {
            certificatePath = certificate
            keyPath = key
        } else {
            let directory = (config.dataDirectory as NSString).appendingPathComponent("tls")
            certificatePath = (directory as NSString).appendingPathComponent("gateway.crt")
            keyPath = (directory as NSString).appendingPathComponent("gateway.key")
            if !FileManager.default.fileExists(atPath: certificatePath) || !FileManager.default.fileExists(atPath: keyPath) {
                try generateSelfSigned(certificatePath: certificatePath, keyPath: keyPath, host: config.postgresListen.host)
            }
        }
        let chain = try NIOSSLCertificate.fromPEMFile(certificatePath).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        return try NIOSSLContext(configuration: configuration)
    }

    /// The client context for an upstream connection, or nil when TLS is off.
    public static func upstreamContext(for connection: Connection) throws -> NIOSSLContext? {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        switch connection.tls {
        case .disable:
            return nil
        case .require:
            // Encrypted, not authenticated: libpq's sslmode=require.
            configuration.certificateVerification = .none
        case .verifyFull:
            configuration.certificateVerification = .fullVerification
            if let caFile = connection.caFile {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            }
        }
        return try NIOSSLContext(configuration: configuration)
    }

    static func generateSelfSigned(certificatePath: String, keyPath: String, host: String) throws {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            CommonName("Gatehouse gateway")
            OrganizationName("Gatehouse (self-signed)")
        }
        let now = Date()
        var names: [GeneralName] = [.dnsName("localhost")]
        if host != "0.0.0.0" && host != "::" && !host.isEmpty {
            if let address = IPv4Address(host) {
                names.append(.ipAddress(ASN1OctetString(contentBytes: address.bytes[...])))
            } else {
                names.append(.dnsName(host))
            }
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(5 * 365 * 86400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                SubjectAlternativeNames(names)
            }, issuerPrivateKey: .init(key))
        let certificatePEM = try certificate.serializeAsPEM().pemString
        try FileSecrets.write(key.pemRepresentation + "\n", to: keyPath)
        try FileSecrets.write(certificatePEM + "\n", to: certificatePath)
    }
}

/// Dotted IPv4 text to bytes, for the certificate's address name.
struct IPv4Address {
    let bytes: [UInt8]
    init?(_ text: String) {
        let parts = text.split(separator: ".").compactMap { UInt8($0) }
        guard parts.count == 4, text.split(separator: ".").count == 4 else { return nil }
        bytes = parts
    }
}
