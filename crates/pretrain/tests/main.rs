//! Pretraining tests (to come).
