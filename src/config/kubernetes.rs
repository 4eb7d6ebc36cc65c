//! The `[kubernetes]` section: a monitor running in a Kubernetes cluster scales the
//! executor Deployment and the KVS StatefulSet (`deploy/k8s/`) instead of spawning
//! executor processes of its own.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where the monitor finds the API server and what it scales there.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Use the Kubernetes node provider (else the monitor runs executors as processes).
    pub enabled: bool,
    /// The API server, `https://host:port` (or `http://` behind `kubectl proxy`); empty:
    /// the cluster's own, from `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT`.
    pub api_server: String,
    /// The namespace of the workloads; empty: the pod's own (its service account's).
    pub namespace: String,
    /// Bearer token file; unset: the pod's service account token (read on every call,
    /// since the kubelet rotates it).
    pub token_file: Option<PathBuf>,
    /// CA bundle of an `https` API server; unset: the service account's `ca.crt`.
    pub ca_file: Option<PathBuf>,
    /// The Deployment whose pods are the executor nodes.
    pub executor_deployment: String,
    /// The StatefulSet whose pods are the KVS nodes.
    pub kvs_statefulset: String,
    /// Labels all of this cluster's pods carry (`key=value,...`); each pod also carries
    /// `app.kubernetes.io/component` = `executor` or `kvs`.
    pub selector: String,
    /// Most KVS nodes the monitor may ask the StatefulSet for.
    pub max_kvs_nodes: usize,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            enabled: false,
            api_server: String::new(),
            namespace: String::new(),
            token_file: None,
            ca_file: None,
            executor_deployment: "cloudburst-executor".into(),
            kvs_statefulset: "cloudburst-kvs".into(),
            selector: "app.kubernetes.io/name=cloudburst".into(),
            max_kvs_nodes: 16,
        }
    }
}

/// Upper bound on `max_kvs_nodes`, as for executors: past it a typo is taken for a request.
pub const MAX_KVS_NODES_LIMIT: usize = 1_000;

impl KubernetesConfig {
    /// Check the section's own rules; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if self.executor_deployment.is_empty() || self.kvs_statefulset.is_empty() {
            return Err(
                "kubernetes.executor_deployment and kubernetes.kvs_statefulset must name a workload"
                    .into(),
            );
        }
        if self.max_kvs_nodes == 0 || self.max_kvs_nodes > MAX_KVS_NODES_LIMIT {
            return Err(format!(
                "kubernetes.max_kvs_nodes must be between 1 and {MAX_KVS_NODES_LIMIT}"
            ));
        }
        let scheme_ok = self.api_server.is_empty()
            || self.api_server.starts_with("https://")
            || self.api_server.starts_with("http://");
        if !scheme_ok {
            return Err(format!(
                "kubernetes.api_server = {:?}: expected https://host:port",
                self.api_server
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disabled_section_is_not_checked_and_an_enabled_one_is() {
        let off = KubernetesConfig {
            api_server: "ftp://x".into(),
            ..KubernetesConfig::default()
        };
        assert_eq!(off.validate(), Ok(()));
        let on = KubernetesConfig {
            enabled: true,
            ..KubernetesConfig::default()
        };
        assert_eq!(on.validate(), Ok(()));
        for (bad, key) in [
            (
                KubernetesConfig {
                    api_server: "10.96.0.1:443".into(),
                    ..on.clone()
                },
                "kubernetes.api_server",
            ),
            (
                KubernetesConfig {
                    max_kvs_nodes: 0,
                    ..on.clone()
                },
                "kubernetes.max_kvs_nodes",
            ),
            (
                KubernetesConfig {
                    executor_deployment: String::new(),
                    ..on.clone()
                },
                "kubernetes.executor_deployment",
            ),
        ] {
            let err = bad.validate().expect_err(key);
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn the_section_reads_from_toml_and_refuses_unknown_keys() {
        let c: KubernetesConfig =
            toml::from_str("enabled = true\nnamespace = \"cb\"\nmax_kvs_nodes = 3").expect("toml");
        assert_eq!(
            (c.enabled, c.namespace.as_str(), c.max_kvs_nodes),
            (true, "cb", 3)
        );
        assert_eq!(c.executor_deployment, "cloudburst-executor");
        assert!(toml::from_str::<KubernetesConfig>("enable = true").is_err());
    }
}
