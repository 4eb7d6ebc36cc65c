//! `ErrorCode`'s wire names.

use super::ErrorCode;
use std::collections::HashSet;

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
