import Foundation
import XCTest
@testable import SegmentLoader
@testable import SegmentS3
@testable import SegmentCore

/// The request signing, against the examples AWS publishes for S3's Signature Version 4
/// ("Examples: Signature Calculations", header-based authentication): the example key
/// AKIAIOSFODNN7EXAMPLE, 2013-05-24 00:00:00 UTC, bucket examplebucket in us-east-1.
final class SigV4Tests: XCTestCase {
    let signer = SigV4(credentials: AWSCredentials(accessKeyId: "AKIAIOSFODNN7EXAMPLE",
                                                   secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                       region: "us-east-1")
    let date = Date(timeIntervalSince1970: 1_369_353_600)  // 20130524T000000Z
    let host = ["Host": "examplebucket.s3.amazonaws.com"]

    func testGetObjectWithARange() {
        var headers = host
        headers["Range"] = "bytes=0-9"
        let added = signer.sign(method: "GET", path: "/test.txt", query: [], headers: headers, date: date)
        XCTAssertEqual(added["x-amz-date"], "20130524T000000Z")
        XCTAssertEqual(added["x-amz-content-sha256"], "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(added["Authorization"], "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                       + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
                       + "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    func testListObjectsWithQueryParameters() {
        let added = signer.sign(method: "GET", path: "/", query: [("prefix", "J"), ("max-keys", "2")], headers: host, date: date)
        XCTAssertEqual(added["Authorization"], "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                       + "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
                       + "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    func testAParameterWithoutAValue() {
        let added = signer.sign(method: "GET", path: "/", query: [("lifecycle", "")], headers: host, date: date)
        XCTAssertEqual(added["Authorization"], "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                       + "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
                       + "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
    }

    /// Keys and prefixes are encoded once, `/` kept in the path and encoded in the query (a
    /// Segment prefix is `segment-logs/<source>/<day>/`), and the session token is signed.
    func testEncodingAndTheSessionToken() {
        XCTAssertEqual(SigV4.encodedPath("/segment-logs/wk 1/1700524800000/a+b~c.gz"), "/segment-logs/wk%201/1700524800000/a%2Bb~c.gz")
        XCTAssertEqual(SigV4.canonicalQuery([("prefix", "segment-logs/wk_1/"), ("list-type", "2"), ("continuation-token", "a=b")]),
                       "continuation-token=a%3Db&list-type=2&prefix=segment-logs%2Fwk_1%2F")
        var temporary = signer
        temporary.credentials.sessionToken = "token/1"
        let added = temporary.sign(method: "GET", path: "/", query: [], headers: host, date: date)
        XCTAssertEqual(added["x-amz-security-token"], "token/1")
        XCTAssertTrue(added["Authorization"]!.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"))
    }
}

/// The settings, found as the AWS tools find them.
final class AWSSettingsTests: XCTestCase {
    func testTheEnvironmentComesFirstThenTheProfileFiles() throws {
        let home = try temporaryDirectory(self).path
        try FileManager.default.createDirectory(atPath: home + "/.aws", withIntermediateDirectories: true)
        try """
            [default]
            aws_access_key_id = AKIDDEFAULT
            aws_secret_access_key = default/secret

            # a comment
            [nightly]
            aws_access_key_id=AKIDNIGHTLY
            aws_secret_access_key = nightly/secret
            aws_session_token = tok
            """.write(toFile: home + "/.aws/credentials", atomically: true, encoding: .utf8)
        try """
            [default]
            region = eu-west-1
            [profile nightly]
            region = eu-central-1
            endpoint_url = http://127.0.0.1:9000
            s3 =
              addressing_style = path
            """.write(toFile: home + "/.aws/config", atomically: true, encoding: .utf8)

        let fromDefault = try AWSSettings.resolve(environment: [:], home: home)
        XCTAssertEqual(fromDefault.credentials, AWSCredentials(accessKeyId: "AKIDDEFAULT", secretAccessKey: "default/secret"))
        XCTAssertEqual(fromDefault.region, "eu-west-1")
        XCTAssertNil(fromDefault.endpoint)
        XCTAssertEqual(fromDefault.source, "profile 'default' in \(home)/.aws/credentials")

        let fromProfile = try AWSSettings.resolve(environment: ["AWS_PROFILE": "nightly"], home: home)
        XCTAssertEqual(fromProfile.credentials, AWSCredentials(accessKeyId: "AKIDNIGHTLY", secretAccessKey: "nightly/secret", sessionToken: "tok"))
        XCTAssertEqual(fromProfile.region, "eu-central-1")
        XCTAssertEqual(fromProfile.endpoint, "http://127.0.0.1:9000")
        // `~` is $HOME, as for the AWS CLI (a job run with HOME=/srv/loader finds /srv/loader/.aws).
        XCTAssertEqual(try AWSSettings.resolve(environment: ["AWS_PROFILE": "nightly", "HOME": home]).credentials.accessKeyId, "AKIDNIGHTLY")

        let fromEnvironment = try AWSSettings.resolve(environment: [
            "AWS_PROFILE": "nightly", "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env/secret",
            "AWS_DEFAULT_REGION": "us-west-2", "AWS_ENDPOINT_URL": "http://minio:9000",
        ], home: home)
        XCTAssertEqual(fromEnvironment.credentials, AWSCredentials(accessKeyId: "AKIDENV", secretAccessKey: "env/secret"))
        XCTAssertEqual(fromEnvironment.region, "us-west-2", "the environment's region before the profile's")
        XCTAssertEqual(fromEnvironment.endpoint, "http://minio:9000")
        XCTAssertEqual(try AWSSettings.resolve(environment: ["AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "B", "AWS_REGION": "ap-south-1",
                                                             "AWS_DEFAULT_REGION": "us-west-2"], home: home).region, "ap-south-1")
    }

    func testMissingCredentialsAreASentenceNamingTheFilesNeverASecret() throws {
        let home = try temporaryDirectory(self).path
        XCTAssertThrowsError(try AWSSettings.resolve(environment: [:], home: home)) { error in
            XCTAssertEqual("\(error)", "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give profile 'default' "
                           + "aws_access_key_id and aws_secret_access_key in \(home)/.aws/credentials")
        }
        XCTAssertThrowsError(try AWSSettings.resolve(environment: ["AWS_PROFILE": "nope"], home: home)) { error in
            XCTAssertEqual("\(error)", "AWS_PROFILE names profile 'nope', which is in neither \(home)/.aws/credentials nor \(home)/.aws/config")
        }
        XCTAssertEqual(try AWSSettings.resolve(environment: ["AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "B"], home: home).region,
                       AWSSettings.defaultRegion)
    }
}

/// The `s3://` sources and listing pages.
final class S3ListingTests: XCTestCase {
    func testAnS3SourceAndItsRequestURLs() throws {
        let location = try XCTUnwrap(S3Location("s3://my-bucket/segment-logs/wk_123/"))
        XCTAssertEqual(location.bucket, "my-bucket")
        XCTAssertEqual(location.prefix, "segment-logs/wk_123/")
        XCTAssertEqual(S3Location("s3://b")?.prefix, "")
        XCTAssertNil(S3Location("s3:///x"))
        XCTAssertNil(S3Location("/data/segment-logs"))

        let aws = location.request(key: "", query: [("prefix", location.prefix), ("list-type", "2")], region: "eu-west-1", endpoint: nil)
        XCTAssertEqual(aws.url, "https://my-bucket.s3.eu-west-1.amazonaws.com/?list-type=2&prefix=segment-logs%2Fwk_123%2F")
        XCTAssertEqual(aws.host, "my-bucket.s3.eu-west-1.amazonaws.com")
        XCTAssertEqual(aws.path, "/")
        let minio = location.request(key: "segment-logs/wk_123/1700524800000/a b.gz", region: "us-east-1", endpoint: "http://127.0.0.1:9000/")
        XCTAssertEqual(minio.url, "http://127.0.0.1:9000/my-bucket/segment-logs/wk_123/1700524800000/a%20b.gz", "path-style on an endpoint")
        XCTAssertEqual(minio.host, "127.0.0.1:9000")
        XCTAssertEqual(minio.path, "/my-bucket/segment-logs/wk_123/1700524800000/a b.gz")
        let dotted = try XCTUnwrap(S3Location("s3://logs.example.com/x/")).request(key: "x/a.gz", region: "eu-west-1", endpoint: nil)
        XCTAssertEqual(dotted.url, "https://s3.eu-west-1.amazonaws.com/logs.example.com/x/a.gz", "a dotted bucket goes path-style, as AWS's SDKs do")
        XCTAssertEqual(dotted.host, "s3.eu-west-1.amazonaws.com")
    }

    /// The shape of AWS's ListObjectsV2 example answer, truncated, with an escaped key.
    func testAListingPageGivesKeysSizesETagsAndTheNextToken() throws {
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Name>my-bucket</Name><Prefix>segment-logs/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
              <IsTruncated>true</IsTruncated>
              <Contents><Key>segment-logs/wk_1/1700524800000/a.gz</Key><LastModified>2023-11-21T00:00:00.000Z</LastModified>
                <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>1024</Size><StorageClass>STANDARD</StorageClass></Contents>
              <Contents><Key>segment-logs/wk_1/1700524800000/b&amp;c&#x2F;d.gz</Key><ETag>"abc-2"</ETag><Size>0</Size></Contents>
              <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
            </ListBucketResult>
            """
        let page = try S3ListPage.parse(xml)
        XCTAssertEqual(page.objects, [
            .init(key: "segment-logs/wk_1/1700524800000/a.gz", size: 1024, etag: "9b2cf535f27731c974343645a3985328"),
            .init(key: "segment-logs/wk_1/1700524800000/b&c/d.gz", size: 0, etag: "abc-2"),
        ])
        XCTAssertEqual(page.nextToken, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        let last = try S3ListPage.parse("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>")
        XCTAssertEqual(last, S3ListPage())
        XCTAssertThrowsError(try S3ListPage.parse("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>")) { error in
            XCTAssertEqual("\(error)", "the listing is truncated but gives no NextContinuationToken")
        }
        XCTAssertThrowsError(try S3ListPage.parse("<Contents><Key>k</Key></Contents>"))
        // With delimiter=/: the folders below the prefix.
        let folders = try S3ListPage.parse("""
            <ListBucketResult><Prefix>segment-logs/wk_1/</Prefix><Delimiter>/</Delimiter><IsTruncated>false</IsTruncated>
            <CommonPrefixes><Prefix>segment-logs/wk_1/1700438400000/</Prefix></CommonPrefixes>
            <CommonPrefixes><Prefix>segment-logs/wk_1/1700524800000/</Prefix></CommonPrefixes></ListBucketResult>
            """)
        XCTAssertEqual(folders.folders, ["segment-logs/wk_1/1700438400000/", "segment-logs/wk_1/1700524800000/"])
        XCTAssertEqual(folders.objects, [])
    }
}
