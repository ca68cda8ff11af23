//! The AWS configuration every AWS client here starts from: the default chain (region and
//! credentials from the environment, profile or instance), with the region and endpoint the
//! service's configuration names, if any.

/// Credentials given instead of the default chain's (an embedding application's own).
pub type Credentials = aws_sdk_acm::config::Credentials;

/// The shared AWS configuration, with `region` and `endpoint` when given.
pub async fn sdk_config(region: Option<&str>, endpoint: Option<&str>) -> aws_config::SdkConfig {
    sdk_config_with(region, endpoint, None).await
}

/// The same, with `credentials` instead of the default chain's when given.
pub async fn sdk_config_with(
    region: Option<&str>,
    endpoint: Option<&str>,
    credentials: Option<Credentials>,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(credentials) = credentials {
        loader = loader.credentials_provider(credentials);
    }
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_owned()));
    }
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}
