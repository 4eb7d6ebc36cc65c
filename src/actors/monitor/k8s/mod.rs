//! The Kubernetes node provider: executor nodes are the pods of a Deployment, KVS nodes
//! the pods of a StatefulSet, and both are resized through their scale subresource. Each
//! pod joins the cluster under its pod name (the manifests pass it as `--node-id` through
//! the downward API), so a pod name is a node id.
//!
//! - Launch: the replicas go up by `count` (a 409 Conflict, someone else changed the scale
//!   meanwhile, is read again and retried); the new executor pods are the ones that appear
//!   in the pod list, waited for up to [`POD_APPEAR_WAIT`]. KVS pods are named by ordinal,
//!   so the new ones are known at once.
//! - Terminate an executor (drained by the monitor first): the pod is annotated with the
//!   lowest `controller.kubernetes.io/pod-deletion-cost`, then the replicas go down by one,
//!   so the ReplicaSet removes that pod and no other.
//! - Terminate a KVS node: a StatefulSet always removes its highest ordinal, so only that
//!   pod ([`KubeProvider::kvs_victim`], the one to drain) may be terminated.
//! - List: the Deployment's pods, and whether each runs or may still come up. The monitor
//!   reconciles it with membership as for the local provider: a pod that never joins is
//!   terminated and replaced; repeated failures stop the launches and show on the dashboard.
//!
//! Calls block the monitor's actor for at most a few API round trips, each bounded by
//! [`http::IO_TIMEOUT`].

pub mod api;
pub mod http;
mod settings;

pub use settings::{KubeSettings, SERVICE_ACCOUNT_DIR};

use super::launches::ProvidedNode;
use super::provider::{NodeKind, NodeProvider, ProviderError};
use crate::ids::NodeId;
use api::{Pod, PodList, Scale};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How long a launch waits for the ReplicaSet to create the new executor pods (it does in
/// well under a second); pods that appear later are listed and used all the same.
pub const POD_APPEAR_WAIT: Duration = Duration::from_secs(3);

/// How often a launch looks for the new pods meanwhile.
const POD_POLL: Duration = Duration::from_millis(100);

/// How often a change of scale is retried after 409 Conflict (another writer, such as a
/// person's `kubectl scale`, changed it between our read and our write).
pub const MAX_CONFLICT_RETRIES: u32 = 3;

/// The label every pod of a component carries, with the component's name as value.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";

/// What went wrong talking to the API server.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error(transparent)]
    Http(#[from] http::HttpError),
    #[error("{method} {path}: {status} {message}")]
    Status {
        method: &'static str,
        path: String,
        status: u16,
        message: String,
    },
    #[error("{path}: unexpected answer: {cause}")]
    Decode { path: String, cause: String },
    #[error("cannot read {path}: {cause}")]
    File { path: String, cause: String },
    #[error("{path}: the scale changed again after {MAX_CONFLICT_RETRIES} retries (409 Conflict)")]
    Conflict { path: String },
    /// A change of scale this provider will not make (the message says why).
    #[error("{0}")]
    Refused(String),
}

/// Which workload a pod belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Executors,
    Kvs,
}

/// Executor and KVS nodes as pods of a Deployment and a StatefulSet.
pub struct KubeProvider {
    http: http::Client,
    s: KubeSettings,
    /// Pods already scaled away: terminating them again must not scale down twice.
    terminated: BTreeSet<NodeId>,
    /// The last pod list read: kept when the API server cannot be reached, so a blip does
    /// not make every pending launch look dead.
    last_list: Vec<ProvidedNode>,
}

impl KubeProvider {
    pub fn new(s: KubeSettings) -> Result<Self, KubeError> {
        let http = http::Client::new(&s.api_server, s.ca_pem.as_deref())?;
        Ok(KubeProvider {
            http,
            s,
            terminated: BTreeSet::new(),
            last_list: vec![],
        })
    }

    /// The KVS node to drain before the next KVS scale-down: the StatefulSet's highest
    /// ordinal (a StatefulSet removes no other); `None` at zero replicas.
    pub fn kvs_victim(&mut self) -> Result<Option<NodeId>, KubeError> {
        let scale = self.get_scale(&self.kvs_scale_path())?;
        Ok(scale
            .spec
            .replicas
            .checked_sub(1)
            .map(|o| NodeId::new(api::ordinal_name(&self.s.kvs_statefulset, o))))
    }

    /// Add `count` KVS nodes; returns the ids they will join as (their pod names).
    pub fn launch_kvs(&mut self, count: u32) -> Result<Vec<NodeId>, ProviderError> {
        let limit = self.s.max_kvs_nodes;
        let path = self.kvs_scale_path();
        let (from, to) = self
            .change_scale(&path, |r| grow(r, count, limit))
            .map_err(|e| match e {
                ScaleError::Limit(p) => p,
                ScaleError::Kube(e) => ProviderError::Launch(e.to_string()),
            })?;
        tracing::info!(from, to, set = %self.s.kvs_statefulset, "scaled the KVS nodes up");
        Ok((from..to)
            .map(|o| NodeId::new(api::ordinal_name(&self.s.kvs_statefulset, o)))
            .collect())
    }

    /// The KVS pods, and whether each runs.
    pub fn list_kvs(&mut self) -> Result<Vec<ProvidedNode>, KubeError> {
        let pods = self.pods(Workload::Kvs)?;
        Ok(provided(&pods))
    }

    fn kvs_scale_path(&self) -> String {
        api::statefulset_scale(&self.s.namespace, &self.s.kvs_statefulset)
    }

    fn executor_scale_path(&self) -> String {
        api::deployment_scale(&self.s.namespace, &self.s.executor_deployment)
    }

    fn pods(&self, w: Workload) -> Result<Vec<Pod>, KubeError> {
        let component = match w {
            Workload::Executors => "executor",
            Workload::Kvs => "kvs",
        };
        let mut selector = format!("{COMPONENT_LABEL}={component}");
        if !self.s.selector.is_empty() {
            selector = format!("{},{selector}", self.s.selector);
        }
        let path = api::pods(&self.s.namespace, &selector);
        let list: PodList = self.call_json("GET", &path, None)?;
        Ok(list.items)
    }

    fn get_scale(&self, path: &str) -> Result<Scale, KubeError> {
        self.call_json("GET", path, None)
    }

    /// Read the scale at `path` and write `to(replicas)` back, retrying on 409 Conflict;
    /// returns the replicas before and after.
    fn change_scale(
        &self,
        path: &str,
        to: impl Fn(u32) -> Result<u32, ProviderError>,
    ) -> Result<(u32, u32), ScaleError> {
        for _ in 0..=MAX_CONFLICT_RETRIES {
            let scale = self.get_scale(path)?;
            let from = scale.spec.replicas;
            let want = to(from).map_err(ScaleError::Limit)?;
            if want == from {
                return Ok((from, want));
            }
            let body = serde_json::to_value(api::rescaled(&scale, want)).map_err(|e| {
                KubeError::Decode {
                    path: path.to_string(),
                    cause: e.to_string(),
                }
            })?;
            let r = self.call("PUT", path, Some(("application/json", &body)))?;
            match r.status {
                200 | 201 => return Ok((from, want)),
                409 => tracing::debug!(path, "scale changed meanwhile (409 Conflict); read again"),
                status => return Err(status_error("PUT", path, status, &r.body).into()),
            }
        }
        Err(KubeError::Conflict {
            path: path.to_string(),
        }
        .into())
    }

    fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        body: Option<(&str, &serde_json::Value)>,
    ) -> Result<T, KubeError> {
        let r = self.call(method, path, body)?;
        if r.status != 200 {
            return Err(status_error(method, path, r.status, &r.body));
        }
        serde_json::from_slice(&r.body).map_err(|e| KubeError::Decode {
            path: path.to_string(),
            cause: e.to_string(),
        })
    }

    fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Option<(&str, &serde_json::Value)>,
    ) -> Result<http::Response, KubeError> {
        let token = match &self.s.token_file {
            // Read on every call: the kubelet rotates a projected token in place.
            Some(f) => Some(format!("Bearer {}", settings::read_small(f)?.trim())),
            None => None,
        };
        let mut headers: Vec<(&str, &str)> = vec![];
        if let Some(t) = &token {
            headers.push(("Authorization", t));
        }
        let bytes = body.map(|(_, v)| v.to_string().into_bytes());
        if let Some((ct, _)) = body {
            headers.push(("Content-Type", ct));
        }
        Ok(self
            .http
            .request(method, path, &headers, bytes.as_deref())?)
    }

    /// Which workload `pod` belongs to, by its component label.
    fn workload_of(&self, pod: &Pod) -> Option<Workload> {
        match pod.metadata.labels.get(COMPONENT_LABEL).map(String::as_str) {
            Some("executor") => Some(Workload::Executors),
            Some("kvs") => Some(Workload::Kvs),
            _ => None,
        }
    }

    fn terminate_pod(&mut self, node: &NodeId) -> Result<(), KubeError> {
        let path = api::pod(&self.s.namespace, node.as_str());
        let r = self.call("GET", &path, None)?;
        if r.status == 404 {
            return Ok(());
        }
        if r.status != 200 {
            return Err(status_error("GET", &path, r.status, &r.body));
        }
        let pod: Pod = serde_json::from_slice(&r.body).map_err(|e| KubeError::Decode {
            path: path.clone(),
            cause: e.to_string(),
        })?;
        if pod.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        match self.workload_of(&pod) {
            Some(Workload::Executors) => self.scale_executor_away(node, &path),
            Some(Workload::Kvs) => self.scale_kvs_away(node),
            None => Err(KubeError::Decode {
                path,
                cause: format!("the pod has no {COMPONENT_LABEL} label of executor or kvs"),
            }),
        }
    }

    /// Mark `node`'s pod as the one to remove, then scale the Deployment down by one.
    fn scale_executor_away(&mut self, node: &NodeId, path: &str) -> Result<(), KubeError> {
        let patch = api::victim_patch();
        let r = self.call(
            "PATCH",
            path,
            Some(("application/merge-patch+json", &patch)),
        )?;
        match r.status {
            200 => {}
            404 => return Ok(()),
            status => return Err(status_error("PATCH", path, status, &r.body)),
        }
        let scale = self.executor_scale_path();
        let (from, to) = self
            .change_scale(&scale, |r| Ok(r.saturating_sub(1)))
            .map_err(ScaleError::into_kube)?;
        self.terminated.insert(node.clone());
        tracing::info!(node = %node, from, to, "scaled the executor nodes down, this pod first");
        Ok(())
    }

    /// Scale the StatefulSet down by one if `node` is its highest ordinal.
    fn scale_kvs_away(&mut self, node: &NodeId) -> Result<(), KubeError> {
        let set = self.s.kvs_statefulset.clone();
        let ordinal = api::ordinal_of(&set, node.as_str());
        let scale = self.kvs_scale_path();
        let (from, to) = self
            .change_scale(&scale, |r| {
                if ordinal.is_some() && ordinal == r.checked_sub(1) {
                    Ok(r - 1)
                } else {
                    Err(ProviderError::Terminate {
                        node: node.clone(),
                        cause: format!(
                            "{set} has {r} replicas: only its highest ordinal can be removed (drain that one)"
                        ),
                    })
                }
            })
            .map_err(ScaleError::into_kube)?;
        self.terminated.insert(node.clone());
        tracing::info!(node = %node, from, to, "scaled the KVS nodes down");
        Ok(())
    }
}

/// A change of scale refused by its limit, or failed.
enum ScaleError {
    Limit(ProviderError),
    Kube(KubeError),
}

impl From<KubeError> for ScaleError {
    fn from(e: KubeError) -> Self {
        ScaleError::Kube(e)
    }
}

impl ScaleError {
    fn into_kube(self) -> KubeError {
        match self {
            ScaleError::Kube(e) => e,
            ScaleError::Limit(ProviderError::Terminate { cause, .. }) => KubeError::Refused(cause),
            ScaleError::Limit(p) => KubeError::Refused(p.to_string()),
        }
    }
}

/// `replicas` plus `count`, if within `limit`.
fn grow(replicas: u32, count: u32, limit: usize) -> Result<u32, ProviderError> {
    let want = replicas.saturating_add(count);
    if want as usize > limit {
        return Err(ProviderError::AtLimit {
            asked: count,
            limit,
        });
    }
    Ok(want)
}

fn provided(pods: &[Pod]) -> Vec<ProvidedNode> {
    pods.iter()
        .map(|p| ProvidedNode {
            node: NodeId::new(&p.metadata.name),
            running: p.running(),
        })
        .collect()
}

fn status_error(method: &'static str, path: &str, status: u16, body: &[u8]) -> KubeError {
    #[derive(serde::Deserialize)]
    struct Status {
        #[serde(default)]
        message: String,
    }
    let message = serde_json::from_slice::<Status>(body)
        .map(|s| s.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    KubeError::Status {
        method,
        path: path.to_string(),
        status,
        message,
    }
}

impl NodeProvider for KubeProvider {
    /// A pod starts from its manifest: it cannot be told which functions to load first
    /// (`_warm`), so a Kubernetes executor loads each on its first call.
    fn launch(
        &mut self,
        kind: NodeKind,
        count: u32,
        _warm: &[String],
    ) -> Result<Vec<NodeId>, ProviderError> {
        if kind == NodeKind::Kvs {
            return self.launch_kvs(count);
        }
        let err = |e: KubeError| ProviderError::Launch(e.to_string());
        let before = self.pods(Workload::Executors).map_err(err)?;
        let path = self.executor_scale_path();
        let limit = self.s.max_executors;
        let (from, to) = self
            .change_scale(&path, |r| grow(r, count, limit))
            .map_err(|e| match e {
                ScaleError::Limit(p) => p,
                ScaleError::Kube(e) => err(e),
            })?;
        tracing::info!(from, to, deployment = %self.s.executor_deployment, "scaled the executor nodes up");
        let deadline = Instant::now() + POD_APPEAR_WAIT;
        loop {
            let new = api::new_pods(&before, &self.pods(Workload::Executors).map_err(err)?);
            if new.len() >= count as usize || Instant::now() >= deadline {
                if new.len() < count as usize {
                    tracing::warn!(asked = count, appeared = new.len(), "fewer executor pods appeared than were asked for; the others are used once they do");
                }
                return Ok(new
                    .into_iter()
                    .take(count as usize)
                    .map(NodeId::new)
                    .collect());
            }
            std::thread::sleep(POD_POLL);
        }
    }

    fn terminate(&mut self, node: &NodeId) -> Result<(), ProviderError> {
        if self.terminated.contains(node) {
            return Ok(());
        }
        self.terminate_pod(node)
            .map_err(|e| ProviderError::Terminate {
                node: node.clone(),
                cause: e.to_string(),
            })
    }

    fn list(&mut self) -> Vec<ProvidedNode> {
        match self.pods(Workload::Executors) {
            Ok(pods) => {
                self.last_list = provided(&pods);
                let names: BTreeSet<&str> = pods.iter().map(|p| p.metadata.name.as_str()).collect();
                self.terminated.retain(|n| names.contains(n.as_str()));
            }
            Err(e) => {
                tracing::warn!(cause = %e, "cannot list the executor pods; using the last list")
            }
        }
        self.last_list.clone()
    }

    /// KVS nodes are the StatefulSet's pods; executors the Deployment's.
    fn list_of(&mut self, kind: NodeKind) -> Vec<ProvidedNode> {
        match kind {
            NodeKind::Executor => self.list(),
            NodeKind::Kvs => self.list_kvs().unwrap_or_else(|e| {
                tracing::warn!(cause = %e, "cannot list the KVS pods");
                Vec::new()
            }),
        }
    }

    /// A StatefulSet scales down from its highest ordinal: that pod is the only one the
    /// monitor may drain (none while the scale cannot be read).
    fn kvs_removable(&mut self, provided: &[ProvidedNode]) -> BTreeSet<NodeId> {
        match self.kvs_victim() {
            Ok(Some(v)) if provided.iter().any(|p| p.node == v) => [v].into_iter().collect(),
            Ok(_) => BTreeSet::new(),
            Err(e) => {
                tracing::warn!(cause = %e, "cannot read the KVS StatefulSet's scale");
                BTreeSet::new()
            }
        }
    }

    /// The pods belong to the Deployment: a monitor that stops (a rolling upgrade, its pod
    /// moved) leaves them to the next one.
    fn nodes_outlive_monitor(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
