//! DAG validation, no I/O: a [`DagSpec`] becomes a [`DagPlan`] (indices instead of names,
//! upstreams in edge-list order) or a [`FunctionError::BadDag`] naming what is wrong.
//!
//! Rules: at least one function, no duplicate functions or edges, every edge between
//! functions of the DAG, no self-loop, acyclic, connected (ignoring direction), and exactly
//! one sink (a function with no downstream): the sink's result is the call's result.
//! Whether the functions are registered is checked by the caller (it needs the KVS).

pub use crate::protocol::limits::MAX_NAME_LEN;
pub use crate::protocol::records::validate_name;
use crate::protocol::{DagSpec, FunctionError, MAX_DAG_FUNCTIONS};
use std::collections::{HashMap, VecDeque};

/// A validated DAG, by function index (the order of [`DagSpec::functions`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DagPlan {
    pub name: String,
    pub functions: Vec<String>,
    /// Per function, its upstream functions in the order of the DAG's edge list.
    pub upstream: Vec<Vec<usize>>,
    /// Per function, its downstream functions in edge-list order.
    pub downstream: Vec<Vec<usize>>,
    /// The one function with no downstream.
    pub sink: usize,
}

impl DagPlan {
    /// Index of the function named `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.functions.iter().position(|f| f == name)
    }

    /// The plan of a one-function call (`CallFunction`).
    pub fn single(function: &str) -> DagPlan {
        DagPlan {
            name: function.to_string(),
            functions: vec![function.to_string()],
            upstream: vec![Vec::new()],
            downstream: vec![Vec::new()],
            sink: 0,
        }
    }
}

/// Validate `spec` and index it.
pub fn plan(spec: &DagSpec) -> Result<DagPlan, FunctionError> {
    validate_name("DAG", &spec.name)?;
    let bad = |m: String| Err(FunctionError::BadDag(format!("`{}`: {m}", spec.name)));
    let n = spec.functions.len();
    if n == 0 {
        return bad("it has no functions".into());
    }
    if n > MAX_DAG_FUNCTIONS {
        return bad(format!(
            "{n} functions, above the maximum of {MAX_DAG_FUNCTIONS}"
        ));
    }
    let mut index = HashMap::with_capacity(n);
    for (i, f) in spec.functions.iter().enumerate() {
        validate_name("function", f)?;
        if index.insert(f.as_str(), i).is_some() {
            return bad(format!("function `{f}` appears twice"));
        }
    }
    let mut upstream = vec![Vec::new(); n];
    let mut downstream = vec![Vec::new(); n];
    for (from, to) in &spec.connections {
        let (Some(&a), Some(&b)) = (index.get(from.as_str()), index.get(to.as_str())) else {
            return bad(format!(
                "edge ({from}, {to}) names a function not in the DAG"
            ));
        };
        if a == b {
            return bad(format!("edge ({from}, {to}) is a self-loop"));
        }
        if downstream[a].contains(&b) {
            return bad(format!("edge ({from}, {to}) appears twice"));
        }
        downstream[a].push(b);
        upstream[b].push(a);
    }
    if let Some(f) = cycle_member(&upstream, &downstream) {
        return bad(format!("it has a cycle through `{}`", spec.functions[f]));
    }
    if !connected(&upstream, &downstream) {
        return bad("it is not connected".into());
    }
    let sinks: Vec<usize> = (0..n).filter(|&i| downstream[i].is_empty()).collect();
    let [sink] = sinks[..] else {
        let names: Vec<&str> = sinks.iter().map(|&i| spec.functions[i].as_str()).collect();
        return bad(format!(
            "it must have exactly one sink (its result), has {}",
            names.join(", ")
        ));
    };
    Ok(DagPlan {
        name: spec.name.clone(),
        functions: spec.functions.clone(),
        upstream,
        downstream,
        sink,
    })
}

/// A function on a cycle (Kahn's algorithm leaves it unvisited), if any.
fn cycle_member(upstream: &[Vec<usize>], downstream: &[Vec<usize>]) -> Option<usize> {
    let mut indegree: Vec<usize> = upstream.iter().map(Vec::len).collect();
    let mut ready: VecDeque<usize> = (0..indegree.len()).filter(|&i| indegree[i] == 0).collect();
    while let Some(i) = ready.pop_front() {
        for &d in &downstream[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.push_back(d);
            }
        }
    }
    indegree.iter().position(|&d| d > 0)
}

fn connected(upstream: &[Vec<usize>], downstream: &[Vec<usize>]) -> bool {
    let mut seen = vec![false; upstream.len()];
    let mut todo = vec![0];
    seen[0] = true;
    while let Some(i) = todo.pop() {
        for &j in upstream[i].iter().chain(&downstream[i]) {
            if !seen[j] {
                seen[j] = true;
                todo.push(j);
            }
        }
    }
    seen.iter().all(|&s| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(functions: &[&str], edges: &[(&str, &str)]) -> DagSpec {
        DagSpec {
            name: "d".into(),
            functions: functions.iter().map(|s| s.to_string()).collect(),
            connections: edges
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    fn err(s: DagSpec) -> String {
        match plan(&s) {
            Err(FunctionError::BadDag(m)) | Err(FunctionError::Invalid(m)) => m,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn linear_and_diamond_plans() {
        let p = plan(&spec(&["incr", "square"], &[("incr", "square")])).expect("valid");
        assert_eq!((p.upstream.clone(), p.sink), (vec![vec![], vec![0]], 1));
        // fan-in order follows the edge list, not the function list
        let d = spec(
            &["a", "b", "c", "d"],
            &[("a", "b"), ("a", "c"), ("c", "d"), ("b", "d")],
        );
        let p = plan(&d).expect("valid");
        assert_eq!(p.upstream[3], vec![2, 1]);
        assert_eq!(p.downstream[0], vec![1, 2]);
        assert_eq!(p.sink, 3);
        assert_eq!(plan(&spec(&["f"], &[])).expect("single").sink, 0);
    }

    #[test]
    fn refuses_cycles_disconnection_and_bad_edges() {
        let cyc = err(spec(
            &["a", "b", "c"],
            &[("a", "b"), ("b", "c"), ("c", "b")],
        ));
        assert!(cyc.contains("cycle"), "{cyc}");
        assert!(err(spec(&["a", "b"], &[])).contains("not connected"));
        assert!(err(spec(&["a"], &[("a", "x")])).contains("not in the DAG"));
        assert!(err(spec(&["a"], &[("a", "a")])).contains("self-loop"));
        assert!(err(spec(&["a", "a"], &[])).contains("twice"));
        assert!(err(spec(&["a", "b"], &[("a", "b"), ("a", "b")])).contains("twice"));
        assert!(err(spec(&[], &[])).contains("no functions"));
        let two_sinks = err(spec(&["a", "b", "c"], &[("a", "b"), ("a", "c")]));
        assert!(two_sinks.contains("exactly one sink"), "{two_sinks}");
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("function", "incr_2.v1").is_ok());
        for bad in ["", "a/b", "a b", "tab\t", &"x".repeat(MAX_NAME_LEN + 1)] {
            assert!(validate_name("function", bad).is_err(), "{bad:?}");
        }
    }
}
