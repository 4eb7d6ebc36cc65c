//! `ErrorCode` against itself (wire names) and against `docs/protocol.md`'s table.

use super::ErrorCode;
use std::collections::HashSet;

/// The protocol document, as the build sees it.
const DOC: &str = include_str!("../../docs/protocol.md");
/// The heading of the error table's section.
const SECTION: &str = "## Error codes";

/// One row of the document's table: code, meaning, whether a retry can help.
type Row = (String, String, bool);

/// The rows of the error table: `| `code` | meaning | yes/no |` lines of the section.
fn doc_rows(doc: &str) -> Result<Vec<Row>, String> {
    let start = doc.find(SECTION).ok_or("no error code section")? + SECTION.len();
    let section = &doc[start..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            let [code, meaning, retry] = cells[..] else {
                return Err(format!("not three cells: {line}"));
            };
            let retry = match retry {
                "yes" => true,
                "no" => false,
                other => return Err(format!("retry must be yes or no, not `{other}`: {line}")),
            };
            Ok((
                code.trim_matches('`').to_string(),
                meaning.to_string(),
                retry,
            ))
        })
        .collect()
}

/// How the document's rows and `codes` differ (empty when they agree, order included).
fn differences(rows: &[Row], codes: &[ErrorCode]) -> Vec<String> {
    let want: Vec<Row> = codes
        .iter()
        .map(|c| {
            (
                c.as_str().to_string(),
                c.meaning().to_string(),
                c.is_retryable(),
            )
        })
        .collect();
    let mut out = Vec::new();
    for w in &want {
        if !rows.contains(w) {
            out.push(format!("the document lacks or words differently: {w:?}"));
        }
    }
    for r in rows {
        if !want.contains(r) {
            out.push(format!("the enum lacks or words differently: {r:?}"));
        }
    }
    if out.is_empty() && rows != want.as_slice() {
        out.push("same rows in another order than ErrorCode::ALL".into());
    }
    out
}

#[test]
fn the_protocol_document_lists_every_code_with_its_meaning_and_retry() {
    let rows = doc_rows(DOC).expect("the table parses");
    assert_eq!(differences(&rows, ErrorCode::ALL), Vec::<String>::new());
}

#[test]
fn the_comparison_sees_a_missing_row_a_changed_retry_and_an_extra_code() {
    let rows = doc_rows(DOC).expect("the table parses");
    let mut missing = rows.clone();
    missing.retain(|r| r.0 != "session_expired");
    assert_eq!(differences(&missing, ErrorCode::ALL).len(), 1);
    let mut flipped = rows.clone();
    flipped[0].2 = !flipped[0].2;
    assert_eq!(differences(&flipped, ErrorCode::ALL).len(), 2);
    let mut extra = rows.clone();
    extra.push(("never_sent".into(), "nothing".into(), false));
    assert_eq!(differences(&extra, ErrorCode::ALL).len(), 1);
    let without: Vec<ErrorCode> = ErrorCode::ALL[1..].to_vec();
    assert_eq!(differences(&rows, &without).len(), 1);
    let bad = DOC.replace("| `not_ready` |", "| `not_ready` | x |");
    assert!(doc_rows(&bad).is_err());
}

#[test]
fn wire_names_are_the_serde_names_and_unique() {
    let mut seen = HashSet::new();
    for &code in ErrorCode::ALL {
        let json = serde_json::to_string(&code).expect("encodes");
        assert_eq!(json, format!("\"{}\"", code.as_str()));
        let back: ErrorCode = serde_json::from_str(&json).expect("decodes");
        assert_eq!(back, code);
        assert!(seen.insert(code.as_str()), "{code} twice");
        let snake = code.as_str();
        assert!(
            snake.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{snake}"
        );
        assert_eq!(code.to_string(), snake);
    }
}
