//! Joining a resolved directory and a caller-given name into one absolute
//! path, lexically ("." and ".." folded, repeated slashes removed).

/// `name` relative to `dir` (or absolute), normalized lexically. A symlink
/// inside `name` is not followed: the kernel resolved `dir`, not `name`.
pub fn join_lexical(dir: &str, name: &str) -> String {
    let full = if name.starts_with('/') || dir.is_empty() {
        name.to_string()
    } else if name.is_empty() {
        dir.to_string()
    } else {
        format!("{dir}/{name}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in full.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Whether a caller-given name has a `..` component (its lexical join
/// may not be the object the kernel resolved).
pub fn has_dotdot(name: &str) -> bool {
    name.split('/').any(|c| c == "..")
}

#[cfg(test)]
mod tests {
    use super::{has_dotdot, join_lexical};

    #[test]
    fn dotdot_components_are_found() {
        assert!(has_dotdot("../x") && has_dotdot("a/../b") && has_dotdot(".."));
        assert!(!has_dotdot("a..b/c") && !has_dotdot("/etc/passwd"));
    }

    #[test]
    fn joins_and_folds() {
        assert_eq!(join_lexical("/tmp/a", "b"), "/tmp/a/b");
        assert_eq!(join_lexical("/tmp/a", "../b/./c"), "/tmp/b/c");
        assert_eq!(join_lexical("/tmp/a", "/etc//passwd"), "/etc/passwd");
        assert_eq!(join_lexical("/", "x"), "/x");
        assert_eq!(join_lexical("/tmp/a", ""), "/tmp/a");
        assert_eq!(join_lexical("/", "../.."), "/");
    }
}
