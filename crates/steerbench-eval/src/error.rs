#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Model(#[from] steerbench_model::ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Steering(#[from] steerbench_steering::SteeringError),
    #[error("{0}")]
    Input(String),
}

pub type Result<T> = std::result::Result<T, EvalError>;
