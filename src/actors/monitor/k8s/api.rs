//! The few Kubernetes API objects the provider reads and writes, as serde types with only
//! the fields it uses (the API server sends more; unknown fields are ignored), the paths
//! they live at, and the pure decisions taken on them (no I/O).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The annotation that makes a ReplicaSet remove a chosen pod first when it scales down.
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The cost a drained victim is given: the lowest there is, so no other pod goes first.
pub const VICTIM_COST: &str = "-2147483648";

/// Container states in which a pod will not come up by itself: it counts as not running,
/// so its launch fails at once instead of at the launch timeout.
const HOPELESS_WAITING: [&str; 5] = [
    "CrashLoopBackOff",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
];

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `autoscaling/v1` Scale: the scale subresource of a Deployment or StatefulSet.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Scale {
    #[serde(default = "scale_api_version")]
    pub api_version: String,
    #[serde(default = "scale_kind")]
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ScaleSpec,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ScaleSpec {
    #[serde(default)]
    pub replicas: u32,
}

fn scale_api_version() -> String {
    "autoscaling/v1".into()
}

fn scale_kind() -> String {
    "Scale".into()
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct PodList {
    #[serde(default)]
    pub items: Vec<Pod>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Pod {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub status: PodStatus,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    #[serde(default)]
    pub phase: String,
    #[serde(default)]
    pub container_statuses: Vec<ContainerStatus>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ContainerStatus {
    #[serde(default)]
    pub state: ContainerState,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ContainerState {
    #[serde(default)]
    pub waiting: Option<Waiting>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Waiting {
    #[serde(default)]
    pub reason: String,
}

impl Pod {
    /// Whether the pod runs or may still come up: not being deleted, not ended, and no
    /// container stuck in a state it does not leave by itself.
    pub fn running(&self) -> bool {
        let ended = matches!(self.status.phase.as_str(), "Succeeded" | "Failed");
        let stuck = self.status.container_statuses.iter().any(|c| {
            c.state
                .waiting
                .as_ref()
                .is_some_and(|w| HOPELESS_WAITING.contains(&w.reason.as_str()))
        });
        self.metadata.deletion_timestamp.is_none() && !ended && !stuck
    }
}

/// The scale subresource of a Deployment.
pub fn deployment_scale(ns: &str, name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale")
}

/// The scale subresource of a StatefulSet.
pub fn statefulset_scale(ns: &str, name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{ns}/statefulsets/{name}/scale")
}

/// One pod.
pub fn pod(ns: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{ns}/pods/{name}")
}

/// The pods matching `selector` (`key=value,...`, percent-encoded here).
pub fn pods(ns: &str, selector: &str) -> String {
    format!(
        "/api/v1/namespaces/{ns}/pods?labelSelector={}",
        percent_encode(selector)
    )
}

/// The merge patch that marks a pod as the one to remove first.
pub fn victim_patch() -> serde_json::Value {
    serde_json::json!({"metadata": {"annotations": {DELETION_COST: VICTIM_COST}}})
}

/// `scale` asking for `replicas`, keeping its resource version (so a concurrent change is
/// refused with 409 Conflict rather than overwritten).
pub fn rescaled(scale: &Scale, replicas: u32) -> Scale {
    let mut s = scale.clone();
    s.spec.replicas = replicas;
    s
}

/// The name of the pod of StatefulSet `set` with `ordinal`.
pub fn ordinal_name(set: &str, ordinal: u32) -> String {
    format!("{set}-{ordinal}")
}

/// The ordinal of `pod` if it belongs to StatefulSet `set`.
pub fn ordinal_of(set: &str, pod: &str) -> Option<u32> {
    let rest = pod.strip_prefix(set)?.strip_prefix('-')?;
    if rest.starts_with('+') {
        return None;
    }
    rest.parse().ok()
}

/// Pod names in `after` that are not in `before` and not being deleted, in name order
/// (a new pod already stuck is one too: the monitor sees it fail).
pub fn new_pods(before: &[Pod], after: &[Pod]) -> Vec<String> {
    let old: std::collections::BTreeSet<&str> =
        before.iter().map(|p| p.metadata.name.as_str()).collect();
    let mut new: Vec<String> = after
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none() && !old.contains(p.metadata.name.as_str())
        })
        .map(|p| p.metadata.name.clone())
        .collect();
    new.sort();
    new
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, phase: &str, waiting: Option<&str>, deleting: bool) -> Pod {
        let json = serde_json::json!({
            "metadata": {"name": name, "uid": "x",
                "deletionTimestamp": if deleting { Some("2026-01-01T00:00:00Z") } else { None }},
            "status": {"phase": phase, "containerStatuses": [
                {"name": "node", "state": waiting.map_or(
                    serde_json::json!({"running": {}}),
                    |r| serde_json::json!({"waiting": {"reason": r}}))}
            ]}
        });
        serde_json::from_value(json).expect("pod")
    }

    #[test]
    fn a_pod_runs_unless_ended_deleted_or_stuck() {
        assert!(pod("a", "Running", None, false).running());
        assert!(pod("a", "Pending", Some("ContainerCreating"), false).running());
        assert!(!pod("a", "Running", Some("CrashLoopBackOff"), false).running());
        assert!(!pod("a", "Pending", Some("ImagePullBackOff"), false).running());
        assert!(!pod("a", "Failed", None, false).running());
        assert!(!pod("a", "Running", None, true).running());
    }

    #[test]
    fn ordinals_belong_to_their_set_only() {
        assert_eq!(ordinal_of("kvs", "kvs-12"), Some(12));
        assert_eq!(ordinal_of("kvs", &ordinal_name("kvs", 3)), Some(3));
        for other in [
            "kvs", "kvs-", "kvs-a", "kvs-+1", "kvsx-1", "other-1", "kvs-1-2",
        ] {
            assert_eq!(ordinal_of("kvs", other), None, "{other}");
        }
    }

    #[test]
    fn selectors_are_percent_encoded() {
        assert_eq!(
            pods("ns", "app.kubernetes.io/component=executor,a=b"),
            "/api/v1/namespaces/ns/pods?labelSelector=app.kubernetes.io%2Fcomponent%3Dexecutor%2Ca%3Db"
        );
    }

    #[test]
    fn new_pods_are_those_not_seen_before_and_not_deleted() {
        let before = [pod("x-a", "Running", None, false)];
        let after = [
            pod("x-c", "Pending", None, false),
            pod("x-a", "Running", None, false),
            pod("x-b", "Pending", None, false),
            pod("x-d", "Running", None, true),
            pod("x-e", "Running", Some("CrashLoopBackOff"), false),
        ];
        assert_eq!(new_pods(&before, &after), vec!["x-b", "x-c", "x-e"]);
    }
}
