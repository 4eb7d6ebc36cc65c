//! Where the Kubernetes API server is and what the provider scales there: the
//! `[kubernetes]` section, completed inside a pod from its service account.

use super::KubeError;
use crate::config::KubernetesConfig;
use std::path::PathBuf;

/// Where a pod finds its service account's token, CA and namespace.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Largest token file read.
const MAX_TOKEN_BYTES: u64 = 64 * 1024;

/// Where the API server is and what to scale: made from the `[kubernetes]` section and,
/// inside a pod, its service account.
#[derive(Clone, Debug)]
pub struct KubeSettings {
    pub api_server: String,
    pub namespace: String,
    pub token_file: Option<PathBuf>,
    pub ca_pem: Option<Vec<u8>>,
    pub executor_deployment: String,
    pub kvs_statefulset: String,
    /// Labels every pod of the cluster carries (`key=value,...`); the component label is
    /// added to select executors or KVS nodes.
    pub selector: String,
    pub max_executors: usize,
    pub max_kvs_nodes: usize,
}

impl KubeSettings {
    /// The settings of a node running in a pod: an empty `api_server` is the in-cluster
    /// one (`KUBERNETES_SERVICE_HOST`/`_PORT`), an empty namespace the pod's own.
    pub fn in_cluster(k: &KubernetesConfig, max_executors: usize) -> Result<Self, KubeError> {
        let sa = PathBuf::from(SERVICE_ACCOUNT_DIR);
        let api_server = if k.api_server.is_empty() {
            let var = |n: &str| {
                std::env::var(n).map_err(|_| KubeError::File {
                    path: n.to_string(),
                    cause: "not set: not in a pod, so set kubernetes.api_server".into(),
                })
            };
            let host = var("KUBERNETES_SERVICE_HOST")?;
            let port = var("KUBERNETES_SERVICE_PORT")?;
            if host.contains(':') {
                format!("https://[{host}]:{port}")
            } else {
                format!("https://{host}:{port}")
            }
        } else {
            k.api_server.clone()
        };
        let namespace = if k.namespace.is_empty() {
            read_small(&sa.join("namespace"))?.trim().to_string()
        } else {
            k.namespace.clone()
        };
        let ca_pem = match (&k.ca_file, api_server.starts_with("https://")) {
            (Some(f), _) => Some(read_small(f)?.into_bytes()),
            (None, true) => Some(read_small(&sa.join("ca.crt"))?.into_bytes()),
            (None, false) => None,
        };
        let token_file = match &k.token_file {
            Some(f) => Some(f.clone()),
            None => Some(sa.join("token")).filter(|p| p.exists()),
        };
        Ok(KubeSettings {
            api_server,
            namespace,
            token_file,
            ca_pem,
            executor_deployment: k.executor_deployment.clone(),
            kvs_statefulset: k.kvs_statefulset.clone(),
            selector: k.selector.clone(),
            max_executors,
            max_kvs_nodes: k.max_kvs_nodes,
        })
    }
}

pub(super) fn read_small(path: &std::path::Path) -> Result<String, KubeError> {
    use std::io::Read;
    let fail = |cause: String| KubeError::File {
        path: path.display().to_string(),
        cause,
    };
    let f = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut s = String::new();
    f.take(MAX_TOKEN_BYTES)
        .read_to_string(&mut s)
        .map_err(|e| fail(e.to_string()))?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_file_is_named_and_a_plain_proxy_needs_none() {
        let k = KubernetesConfig {
            enabled: true,
            api_server: "https://127.0.0.1:6443".into(),
            namespace: "cb".into(),
            ca_file: Some("/nonexistent/k8s-ca.crt".into()),
            ..KubernetesConfig::default()
        };
        let err = KubeSettings::in_cluster(&k, 4).expect_err("no CA");
        assert!(err.to_string().contains("/nonexistent/k8s-ca.crt"), "{err}");
        let plain = KubernetesConfig {
            api_server: "http://127.0.0.1:8001".into(),
            ca_file: None,
            ..k
        };
        let s = KubeSettings::in_cluster(&plain, 4).expect("kubectl proxy needs no CA");
        assert_eq!(
            (s.namespace.as_str(), s.ca_pem, s.max_executors),
            ("cb", None, 4)
        );
    }
}
