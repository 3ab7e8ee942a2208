//! Service URLs (`s3://`, `gs://`, `azblob://`) as operators, from OpenDAL's configuration
//! of each service.

use std::collections::{BTreeMap, HashMap};

use cornerstone_backend_api::{Error, ErrorKind, Result};

use super::policy::StoragePolicy;
use crate::error::from_opendal;

/// A service URL (`s3://bucket/prefix`, `gs://bucket/prefix`, `azblob://container/prefix`)
/// as an operator, from OpenDAL's configuration of the service: every option OpenDAL's
/// `S3Config`, `GcsConfig` or `AzblobConfig` takes (by its name or an alias, such as
/// `aws_region`), plus `anonymous` (unsigned requests). Unknown options are an error
/// naming the known ones. Credentials not given come from the service's usual environment
/// variables and files (OpenDAL's loaders).
pub(crate) fn service_operator(
    scheme: &str,
    url: &str,
    rest: &str,
    mut options: BTreeMap<String, String>,
) -> Result<opendal::Operator> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(
            Error::invalid_input("storage URL has no bucket or container").with_context("url", url),
        );
    }
    let anonymous = take_flag(&mut options, "anonymous")?;
    match scheme {
        "s3" => s3(url, bucket, prefix, anonymous, options),
        "gs" | "gcs" => gcs(url, bucket, prefix, anonymous, options),
        "azblob" => azblob(url, bucket, prefix, anonymous, options),
        other => Err(unsupported(other)),
    }
}

/// The schemes this build opens.
pub(crate) fn supported() -> String {
    let mut schemes = vec!["file", "memory"];
    if cfg!(feature = "s3") {
        schemes.push("s3");
    }
    if cfg!(feature = "gcs") {
        schemes.push("gs");
    }
    if cfg!(feature = "azblob") {
        schemes.push("azblob");
    }
    schemes.join(", ")
}

pub(crate) fn unsupported(scheme: &str) -> Error {
    let feature = match scheme {
        "s3" => Some("s3"),
        "gs" | "gcs" => Some("gcs"),
        "azblob" => Some("azblob"),
        _ => None,
    };
    let mut e = Error::new(
        ErrorKind::Unsupported,
        "unsupported checkpoint storage URL scheme",
    )
    .with_context("scheme", scheme)
    .with_context("supported", supported());
    if let Some(feature) = feature {
        e = e.with_context(
            "build with",
            format!("the `{feature}` feature of cornerstone-checkpoint-store"),
        );
    }
    e
}

/// Removes a flag option (`true`, `false`, or empty for true).
fn take_flag(options: &mut BTreeMap<String, String>, key: &str) -> Result<bool> {
    match options.remove(key).as_deref() {
        None | Some("false") => Ok(false),
        Some("" | "true") => Ok(true),
        Some(other) => Err(Error::invalid_input("storage option takes true or false")
            .with_context("option", key)
            .with_context("value", other)),
    }
}

/// A service's configuration from options, through OpenDAL's own deserializer; an option
/// that the configuration does not take is an error naming the ones it does.
#[cfg_attr(
    not(any(feature = "s3", feature = "gcs", feature = "azblob")),
    allow(dead_code)
)]
fn service_config<C: opendal::Configurator>(
    service: &str,
    url: &str,
    mut options: BTreeMap<String, String>,
    from_url: [(&str, &str); 2],
) -> Result<C> {
    for (key, value) in from_url {
        if options.contains_key(key) {
            return Err(Error::invalid_input(
                "storage option is given by the URL and cannot be set apart",
            )
            .with_context("option", key)
            .with_context("url", url));
        }
        options.insert(key.to_owned(), value.to_owned());
    }
    let mut unknown = Vec::new();
    let de = opendal::raw::ConfigDeserializer::new(options.into_iter().collect::<HashMap<_, _>>());
    let config: C =
        serde_ignored::deserialize(de, |path| unknown.push(path.to_string())).map_err(|e| {
            Error::invalid_input("invalid storage option")
                .with_context("service", service)
                .with_context("url", url)
                .with_context("cause", e)
        })?;
    if !unknown.is_empty() {
        let mut known = Vec::new();
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(
            C::deserialize(opendal::raw::ConfigDeserializer::new(
                from_url
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ))
            .ok(),
        ) {
            known.extend(fields.keys().cloned());
        }
        known.extend(["anonymous".to_owned()]);
        known.extend(StoragePolicy::OPTIONS.iter().map(|s| (*s).to_owned()));
        known.sort();
        return Err(Error::invalid_input("unknown storage option")
            .with_context("service", service)
            .with_context("option", unknown.join(", "))
            .with_context("known", known.join(", ")));
    }
    Ok(config)
}

/// An operator from a service's configuration.
#[cfg_attr(
    not(any(feature = "s3", feature = "gcs", feature = "azblob")),
    allow(dead_code)
)]
fn operator<C: opendal::Configurator>(url: &str, config: C) -> Result<opendal::Operator> {
    // The process-wide HTTP transport (reqwest with rustls); idempotent.
    opendal::install_default();
    opendal::Operator::from_config(config).map_err(|e| from_opendal("open storage", url, e))
}

#[cfg(feature = "s3")]
fn s3(
    url: &str,
    bucket: &str,
    prefix: &str,
    anonymous: bool,
    mut options: BTreeMap<String, String>,
) -> Result<opendal::Operator> {
    // The name this crate used before it took OpenDAL's (`enable_virtual_host_style`).
    if let Some(v) = options.remove("virtual_host_style") {
        options.insert("enable_virtual_host_style".to_owned(), v);
    }
    let root = format!("/{prefix}");
    let mut config: opendal::services::S3Config =
        service_config("s3", url, options, [("bucket", bucket), ("root", &root)])?;
    if anonymous {
        // Unsigned requests: public buckets, or servers without authentication.
        config.skip_signature = true;
    }
    let from_env = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
    if config.region.is_none() && !from_env {
        return Err(Error::invalid_input(
            "s3 needs a region: the option `region` (cornerstone: --region), or AWS_REGION / \
             AWS_DEFAULT_REGION (S3-compatible servers such as SeaweedFS and MinIO accept \
             us-east-1)",
        )
        .with_context("url", url));
    }
    operator(url, config)
}

#[cfg(not(feature = "s3"))]
fn s3(
    _url: &str,
    _bucket: &str,
    _prefix: &str,
    _anonymous: bool,
    _options: BTreeMap<String, String>,
) -> Result<opendal::Operator> {
    Err(unsupported("s3"))
}

#[cfg(feature = "gcs")]
fn gcs(
    url: &str,
    bucket: &str,
    prefix: &str,
    anonymous: bool,
    options: BTreeMap<String, String>,
) -> Result<opendal::Operator> {
    let root = format!("/{prefix}");
    let mut config: opendal::services::GcsConfig =
        service_config("gcs", url, options, [("bucket", bucket), ("root", &root)])?;
    if anonymous {
        config.skip_signature = true;
    }
    operator(url, config)
}

#[cfg(not(feature = "gcs"))]
fn gcs(
    _url: &str,
    _bucket: &str,
    _prefix: &str,
    _anonymous: bool,
    _options: BTreeMap<String, String>,
) -> Result<opendal::Operator> {
    Err(unsupported("gs"))
}

#[cfg(feature = "azblob")]
fn azblob(
    url: &str,
    container: &str,
    prefix: &str,
    anonymous: bool,
    options: BTreeMap<String, String>,
) -> Result<opendal::Operator> {
    let root = format!("/{prefix}");
    let mut config: opendal::services::AzblobConfig = service_config(
        "azblob",
        url,
        options,
        [("container", container), ("root", &root)],
    )?;
    if anonymous {
        config.skip_signature = true;
    }
    if config.endpoint.is_none() {
        // Azure's public endpoint of the account, named by the option or by the variable
        // OpenDAL's credential loader reads.
        let account = config.account_name.clone().or_else(|| {
            std::env::var("AZBLOB_ACCOUNT_NAME")
                .ok()
                .filter(|v| !v.is_empty())
        });
        match account {
            Some(account) => {
                config.endpoint = Some(format!("https://{account}.blob.core.windows.net"));
            }
            None => {
                return Err(Error::invalid_input(
                    "azblob needs an endpoint: the option `endpoint` \
                     (https://ACCOUNT.blob.core.windows.net, or an emulator's URL), or an \
                     account name (the option `account_name` or AZBLOB_ACCOUNT_NAME) for \
                     Azure's public endpoint",
                )
                .with_context("url", url));
            }
        }
    }
    operator(url, config)
}

#[cfg(not(feature = "azblob"))]
fn azblob(
    _url: &str,
    _container: &str,
    _prefix: &str,
    _anonymous: bool,
    _options: BTreeMap<String, String>,
) -> Result<opendal::Operator> {
    Err(unsupported("azblob"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[cfg(feature = "s3")]
    #[test]
    fn s3_takes_opendal_options_and_names_unknown_ones() {
        // Any option of OpenDAL's S3Config, by name or alias.
        let op = service_operator(
            "s3",
            "s3://b/p",
            "b/p",
            options(&[
                ("region", "us-east-1"),
                ("endpoint", "http://127.0.0.1:1"),
                ("aws_profile", "nobody"),
                ("default_storage_class", "STANDARD_IA"),
                ("virtual_host_style", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(op.info().name(), "b");
        assert_eq!(op.info().root(), "/p/");

        let e = service_operator(
            "s3",
            "s3://b/p",
            "b/p",
            options(&[("region", "us-east-1"), ("regoin", "eu-west-1")]),
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let text = e.to_string();
        assert!(text.contains("unknown storage option"), "{text}");
        assert!(text.contains("regoin"), "{text}");
        assert!(text.contains("session_token"), "{text}");
        assert!(text.contains("anonymous"), "{text}");
        assert!(text.contains("retries"), "{text}");
    }

    #[cfg(feature = "gcs")]
    #[test]
    fn gcs_opens_a_bucket() {
        let op = service_operator(
            "gs",
            "gs://b/p",
            "b/p",
            options(&[("endpoint", "http://127.0.0.1:1"), ("anonymous", "")]),
        )
        .unwrap();
        assert_eq!(op.info().name(), "b");
        let e = service_operator("gs", "gs://b", "b", options(&[("region", "x")])).unwrap_err();
        assert!(e.to_string().contains("region"), "{e}");
    }

    #[cfg(feature = "azblob")]
    #[test]
    fn azblob_names_the_missing_endpoint() {
        if std::env::var_os("AZBLOB_ACCOUNT_NAME").is_none() {
            let e = service_operator("azblob", "azblob://c/p", "c/p", BTreeMap::new()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(e.to_string().contains("`endpoint`"), "{e}");
            assert!(e.to_string().contains("account_name"), "{e}");
        }
        let op = service_operator(
            "azblob",
            "azblob://c/p",
            "c/p",
            options(&[("account_name", "devstoreaccount1")]),
        )
        .unwrap();
        assert_eq!(op.info().name(), "c");
    }
}
