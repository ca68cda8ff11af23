//! The artifact store in S3 (or an S3-compatible server: endpoint override, path-style).

use anyhow::Context;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

use super::artifacts::ArtifactStore;
use crate::ports::BoxFuture;

/// Where and how to store.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// The bucket (`certificates.s3_bucket`).
    pub bucket: String,
    /// Region; default from the AWS environment.
    pub region: Option<String>,
    /// Another endpoint (S3-compatible servers, tests).
    pub endpoint: Option<String>,
    /// Path-style addressing (most S3-compatible servers need it).
    pub force_path_style: bool,
    /// `AES256` or `aws:kms`.
    pub server_side_encryption: Option<String>,
    /// The KMS key for `aws:kms`.
    pub kms_key_id: Option<String>,
}

/// S3.
#[derive(Debug, Clone)]
pub struct S3ArtifactStore {
    client: aws_sdk_s3::Client,
    settings: S3Settings,
}

impl S3ArtifactStore {
    /// A store with the default AWS credential chain.
    pub async fn new(settings: S3Settings) -> Self {
        let shared = super::aws::sdk_config(settings.region.as_deref(), None).await;
        let mut config =
            aws_sdk_s3::config::Builder::from(&shared).force_path_style(settings.force_path_style);
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        Self::from_client(aws_sdk_s3::Client::from_conf(config.build()), settings)
    }

    /// A store over a client configured elsewhere (tests, custom credentials).
    pub fn from_client(client: aws_sdk_s3::Client, settings: S3Settings) -> Self {
        Self { client, settings }
    }
}

impl ArtifactStore for S3ArtifactStore {
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            // Never replace an artifact: look first (S3 has no portable create-only write).
            let exists = self
                .client
                .head_object()
                .bucket(&self.settings.bucket)
                .key(key)
                .send()
                .await
                .is_ok();
            anyhow::ensure!(
                !exists,
                "s3://{}/{key} already exists",
                self.settings.bucket
            );
            let mut put = self
                .client
                .put_object()
                .bucket(&self.settings.bucket)
                .key(key)
                .body(ByteStream::from(bytes));
            if let Some(sse) = &self.settings.server_side_encryption {
                put = put.server_side_encryption(ServerSideEncryption::from(sse.as_str()));
            }
            if let Some(kms) = &self.settings.kms_key_id {
                put = put.ssekms_key_id(kms);
            }
            put.send()
                .await
                .map_err(|e| anyhow::anyhow!("{}", aws_sdk_s3::error::DisplayErrorContext(&e)))
                .with_context(|| format!("could not store s3://{}/{key}", self.settings.bucket))?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<Vec<u8>>> {
        Box::pin(async move {
            let object = self
                .client
                .get_object()
                .bucket(&self.settings.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("{}", aws_sdk_s3::error::DisplayErrorContext(&e)))
                .with_context(|| format!("could not read s3://{}/{key}", self.settings.bucket))?;
            Ok(object.body.collect().await?.into_bytes().to_vec())
        })
    }

    fn location(&self) -> String {
        format!("s3://{}", self.settings.bucket)
    }

    fn bucket(&self) -> String {
        self.settings.bucket.clone()
    }
}
