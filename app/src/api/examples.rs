//! A realistic payload per job type: the dashboard's enqueue form starts from these, and the
//! template tests render them. Kept as JSON text: the browser shows it as it is, with no
//! code to build it.

use serde_json::Value;

use super::JobType;

/// The example as pretty JSON text, as the enqueue form shows it.
pub fn example_json(job_type: JobType) -> &'static str {
    match job_type {
        JobType::PortfolioSummary => {
            r#"{
  "portfolio_id": "PF-GROWTH-01",
  "as_of": "2026-11-27",
  "base_currency": "USD",
  "cash": 15000.0,
  "positions": [
    {
      "ticker": "AAPL",
      "quantity": 120,
      "avg_cost": 182.5,
      "price": 227.1
    },
    {
      "ticker": "NVDA",
      "quantity": 80,
      "avg_cost": 95.2,
      "price": 141.8
    },
    {
      "ticker": "TLT",
      "quantity": 150,
      "avg_cost": 98.4,
      "price": 91.3
    }
  ]
}"#
        }
        JobType::RiskReport => {
            r#"{
  "portfolio_id": "PF-GROWTH-01",
  "horizon_days": 10,
  "confidence": 0.99,
  "positions": [
    {
      "ticker": "NVDA",
      "weight_pct": 38.5,
      "beta": 1.9
    },
    {
      "ticker": "AAPL",
      "weight_pct": 33.0,
      "beta": 1.2
    },
    {
      "ticker": "TLT",
      "weight_pct": 28.5,
      "beta": -0.3
    }
  ]
}"#
        }
        JobType::StrategyBacktest => {
            r#"{
  "strategy": "momentum_12_1",
  "universe": [
    "AAPL",
    "MSFT",
    "NVDA",
    "AMZN",
    "META"
  ],
  "start": "2020-01-01",
  "end": "2025-12-31",
  "metrics": {
    "cagr_pct": 14.2,
    "sharpe": 1.1,
    "max_drawdown_pct": -23.4,
    "trades": 412
  }
}"#
        }
        JobType::SentimentAnalysis => {
            r#"{
  "ticker": "NVDA",
  "headlines": [
    "Nvidia beats estimates as data-centre revenue doubles",
    "Export curbs could weigh on next quarter's China sales",
    "Analysts lift price targets after guidance raise"
  ]
}"#
        }
        JobType::ModelEvaluation => {
            r#"{
  "model_name": "xgb-alpha-v3",
  "task": "next-day direction of S&P 500 constituents",
  "metrics": {
    "accuracy": 0.54,
    "precision": 0.56,
    "recall": 0.51,
    "auc": 0.58
  },
  "train_period": "2015-2022",
  "test_period": "2023-2025"
}"#
        }
        JobType::TradingAnalytics => {
            r#"{
  "account": "ACC-7",
  "period": "2026-11",
  "trades": [
    {
      "ticker": "AAPL",
      "side": "buy",
      "qty": 100,
      "price": 225.3,
      "pnl": 340.2
    },
    {
      "ticker": "TSLA",
      "side": "sell",
      "qty": 40,
      "price": 251.0,
      "pnl": -512.8
    },
    {
      "ticker": "NVDA",
      "side": "buy",
      "qty": 60,
      "price": 138.4,
      "pnl": 221.5
    }
  ]
}"#
        }
    }
}

pub fn example_payload(job_type: JobType) -> Value {
    serde_json::from_str(example_json(job_type)).expect("the examples are JSON")
}
