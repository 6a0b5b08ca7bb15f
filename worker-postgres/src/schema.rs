//! The schema that holds the tables: its name, checked, and the SQL text rendered for it.

use crate::Error;

/// A schema name: 1 to 63 lowercase ASCII letters, digits or `_`, not starting with a digit.
/// Always written quoted into the SQL, so no name can change a statement's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Schema(String);

impl Schema {
    pub(crate) const DEFAULT: &'static str = "worker";

    pub(crate) fn new(name: &str) -> Result<Self, Error> {
        let mut chars = name.chars();
        let valid = name.len() <= 63
            && chars
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(Error::SchemaName(name.to_owned()))
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.0
    }

    /// `sql` with every `{schema}` replaced by the quoted name.
    pub(crate) fn render(&self, sql: &str) -> String {
        sql.replace("{schema}", &format!("\"{}\"", self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::Schema;

    #[test]
    fn names_are_plain_lowercase_identifiers() {
        for good in ["worker", "_jobs", "tenant_42", &"a".repeat(63)] {
            assert!(Schema::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Worker",
            "9lives",
            "a-b",
            "a b",
            "a\"b",
            &"a".repeat(64),
            "ü",
        ] {
            let err = Schema::new(bad).expect_err(bad).to_string();
            assert!(err.contains("lowercase"), "{err}");
        }
        assert_eq!(
            Schema::new("w")
                .expect("valid")
                .render("SELECT 1 FROM {schema}.jobs"),
            "SELECT 1 FROM \"w\".jobs"
        );
    }
}
