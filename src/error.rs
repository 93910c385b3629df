//! The one error a command ends with, and the exit code each kind of failure maps to: bad
//! flags, job file or values are usage errors (2), everything else a failure (1). Each stage
//! keeps its own error enum with its context (table, chunk, key, path); this only wraps them.

use crate::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
    #[error(transparent)]
    Import(#[from] crate::import::ImportError),
    #[error(transparent)]
    Estimate(#[from] crate::estimate::EstimateError),
    #[error(transparent)]
    Verify(#[from] crate::verify::VerifyError),
    #[error(transparent)]
    Bench(#[from] crate::bench::BenchError),
    #[error(transparent)]
    Cdc(#[from] crate::cdc::CdcError),
    #[error(transparent)]
    Run(#[from] crate::run::RunError),
    #[error(transparent)]
    Status(#[from] crate::status::StatusError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),

}

impl Error {
    pub fn exit_code(&self) -> ExitCode {
        use crate::settings::SettingsError;
        match self {
            // The server could not be reached or refused us: not the user's typing.
            Error::Settings(SettingsError::Source(_) | SettingsError::Run(_)) => ExitCode::Failure,
            Error::Settings(_) | Error::Sync(crate::sync::SyncError::Usage(_)) | Error::Metrics(crate::metrics::MetricsError::Address { .. }) => ExitCode::Usage,
            _ => ExitCode::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::SettingsError;

    #[test]
    fn bad_settings_are_usage_errors_and_the_rest_failures() {
        let range = Error::from(SettingsError::Range { flag: "--wcu", value: "-1".into(), allowed: "0 or more".into() });
        assert_eq!(range.exit_code(), ExitCode::Usage);
        assert_eq!(Error::from(crate::sync::SyncError::Usage("x".into())).exit_code(), ExitCode::Usage);
        assert_eq!(Error::from(crate::cdc::CdcError::NoImport).exit_code(), ExitCode::Failure);
        let src = Error::from(SettingsError::Source(crate::source::SourceError::BadUrl("x".into())));
        assert_eq!(src.exit_code(), ExitCode::Failure);
    }
}
