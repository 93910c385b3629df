//! The names users type for each enumerated setting (`--format parquet`, `table_prep =
//! "drop-and-create"`). A stage declares its enum's names here with `choices!`; the command line
//! builds its value parser from them (`cli::choice`), so stages never derive a clap type and the
//! names live beside the enum they name.

/// An enumerated setting: every value with the name users type for it.
pub trait Choice: Copy + PartialEq + Send + Sync + 'static {
    const CHOICES: &'static [(&'static str, Self)];

    /// The name users type for this value.
    fn name(self) -> &'static str {
        Self::CHOICES.iter().find(|(_, v)| *v == self).map(|(n, _)| *n).expect("every value has a name")
    }

    /// The value a name stands for.
    fn from_name(name: &str) -> Option<Self> {
        Self::CHOICES.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// `choices!(ChunkFormat { "parquet" => ChunkFormat::Parquet, "csv" => ChunkFormat::Csv });`
#[macro_export]
macro_rules! choices {
    ($t:ty { $($name:literal => $value:expr),+ $(,)? }) => {
        impl $crate::choice::Choice for $t {
            const CHOICES: &'static [(&'static str, Self)] = &[$(($name, $value)),+];
        }
    };
}

#[cfg(test)]
mod tests {
    use super::Choice;
    use serde::Serialize;

    /// The command line and the job file (serde) must spell every value alike.
    fn same_as_serde<T: Choice + Serialize + std::fmt::Debug>() {
        for (name, value) in T::CHOICES {
            assert_eq!(serde_json::to_value(value).unwrap(), serde_json::Value::String(name.to_string()));
            assert_eq!(T::from_name(name), Some(*value));
            assert_eq!(value.name(), *name);
        }
    }

    #[test]
    fn every_choice_is_spelt_as_in_the_job_file() {
        same_as_serde::<crate::manifest::ChunkFormat>();
        same_as_serde::<crate::manifest::Compression>();
        same_as_serde::<crate::value::dynamo::TemporalAs>();
        same_as_serde::<crate::value::dynamo::JsonAs>();
        same_as_serde::<crate::value::dynamo::NullAs>();
        same_as_serde::<crate::value::dynamo::WideDecimal>();
        same_as_serde::<crate::source::snapshot::Consistency>();
        same_as_serde::<crate::source::types::ZeroDatePolicy>();
        same_as_serde::<crate::transform::group::OnDuplicate>();
        same_as_serde::<crate::import::tables::TablePrep>();
        same_as_serde::<crate::import::tables::Billing>();
        same_as_serde::<crate::sync::SseMode>();
        same_as_serde::<crate::bench::ProxyMode>();
        same_as_serde::<crate::import::Via>();
        same_as_serde::<crate::source::session::RowReader>();
        same_as_serde::<crate::import::s3_import::ImportCompression>();
    }
}
