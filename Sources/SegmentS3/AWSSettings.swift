import Foundation

/// Where S3 requests go and with which key, found as the AWS tools find them: the
/// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL`) first, then
/// the profile `AWS_PROFILE` (else `default`) in the shared credentials file
/// (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`) and the config file
/// (`AWS_CONFIG_FILE`, else `~/.aws/config`, where it is `[profile NAME]`).
public struct AWSSettings: Sendable, Equatable {
    public var credentials: AWSCredentials
    public var region: String
    /// An S3-compatible store (MinIO, Ceph, R2) instead of AWS; requests to it use path-style
    /// addressing (`http://host/bucket/key`).
    public var endpoint: String?
    /// Where the key came from, for messages (never the key itself).
    public var source: String

    public static let defaultRegion = "us-east-1"

    public struct Missing: Error, CustomStringConvertible {
        public var description: String
    }

    /// `home` defaults to `$HOME`, as the AWS CLI's `~` (the password file's home only when
    /// HOME is not set).
    public static func resolve(environment: [String: String] = ProcessInfo.processInfo.environment,
                               home: String? = nil) throws -> AWSSettings {
        func env(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        let home = home ?? env("HOME") ?? NSHomeDirectory()
        let profile = env("AWS_PROFILE") ?? "default"
        let credentialsPath = env("AWS_SHARED_CREDENTIALS_FILE") ?? home + "/.aws/credentials"
        let configPath = env("AWS_CONFIG_FILE") ?? home + "/.aws/config"
        let credentialsFile = try INIFile.read(credentialsPath)
        let configFile = try INIFile.read(configPath)
        let fromCredentials = credentialsFile?.sections[profile]
        let fromConfig = configFile?.sections[profile == "default" ? "default" : "profile \(profile)"]
            ?? (profile == "default" ? configFile?.sections["profile default"] : nil)
        let settings = (fromConfig ?? [:]).merging(fromCredentials ?? [:]) { _, credentials in credentials }

        let credentials: AWSCredentials, source: String
        if let id = env("AWS_ACCESS_KEY_ID"), let secret = env("AWS_SECRET_ACCESS_KEY") {
            credentials = AWSCredentials(accessKeyId: id, secretAccessKey: secret, sessionToken: env("AWS_SESSION_TOKEN"))
            source = "the environment (AWS_ACCESS_KEY_ID)"
        } else if let id = settings["aws_access_key_id"], let secret = settings["aws_secret_access_key"] {
            credentials = AWSCredentials(accessKeyId: id, secretAccessKey: secret, sessionToken: settings["aws_session_token"])
            source = "profile '\(profile)' in \(fromCredentials?["aws_access_key_id"] != nil ? credentialsPath : configPath)"
        } else if env("AWS_PROFILE") != nil, fromCredentials == nil, fromConfig == nil {
            throw Missing(description: "AWS_PROFILE names profile '\(profile)', which is in neither \(credentialsPath) nor \(configPath)")
        } else {
            throw Missing(description: "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give profile '\(profile)' "
                          + "aws_access_key_id and aws_secret_access_key in \(credentialsPath)")
        }
        let region = env("AWS_REGION") ?? env("AWS_DEFAULT_REGION") ?? settings["region"] ?? defaultRegion
        let endpoint = env("AWS_ENDPOINT_URL_S3") ?? env("AWS_ENDPOINT_URL") ?? settings["endpoint_url"]
        return AWSSettings(credentials: credentials, region: region, endpoint: endpoint, source: source)
    }
}

/// The AWS tools' INI files: `[section]` lines, `key = value` lines, `#` and `;` comments.
/// An indented line continues a nested setting (`s3 =` then `  addressing_style = path`) and
/// is not a key of the section.
struct INIFile {
    var sections: [String: [String: String]] = [:]

    /// nil when there is no such file.
    static func read(_ path: String) throws -> INIFile? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw AWSSettings.Missing(description: "\(path) cannot be read as UTF-8 text")
        }
        return parse(text)
    }

    static func parse(_ text: String) -> INIFile {
        var file = INIFile()
        var section: String?
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            if raw.first == " " || raw.first == "\t" { continue }
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                let name = line.dropFirst().dropLast().split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
                section = name
                if file.sections[name] == nil { file.sections[name] = [:] }
                continue
            }
            guard let section, let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            file.sections[section]?[key] = value
        }
        return file
    }
}
