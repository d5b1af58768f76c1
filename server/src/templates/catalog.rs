//! What each job type asks the model, and the shape of the answer it must give.

use app::api::JobType;
use serde_json::{Value, json};

pub struct Template {
    pub system: &'static str,
    pub task: &'static str,
    pub tool_name: &'static str,
    pub tool_description: &'static str,
    pub max_tokens: i64,
    pub schema: fn() -> Value,
}

const ANALYST: &str = "You are a careful buy-side analyst at Bitcain. Use only the data given. \
    Be specific and brief, name tickers, and never invent figures that are not derivable from the input.";

pub fn template(job_type: JobType) -> Template {
    match job_type {
        JobType::PortfolioSummary => Template {
            system: ANALYST,
            task: "Summarise this portfolio for its owner: value, weights, what drives it, and the outlook.",
            tool_name: "record_portfolio_summary",
            tool_description: "Record the portfolio summary.",
            max_tokens: 1500,
            schema: || {
                json!({
                    "type": "object",
                    "required": ["headline", "total_value", "positions", "top_risks", "outlook"],
                    "properties": {
                        "headline": {"type": "string"},
                        "total_value": {"type": "number", "minimum": 0},
                        "positions": {"type": "array", "maxItems": 50, "items": {
                            "type": "object",
                            "required": ["ticker", "weight_pct"],
                            "properties": {
                                "ticker": {"type": "string"},
                                "weight_pct": {"type": "number", "minimum": 0, "maximum": 100},
                                "comment": {"type": "string"}
                            }
                        }},
                        "top_risks": {"type": "array", "maxItems": 5, "items": {"type": "string"}},
                        "outlook": {"type": "string", "enum": ["bullish", "neutral", "bearish"]}
                    }
                })
            },
        },
        JobType::RiskReport => Template {
            system: ANALYST,
            task: "Assess this portfolio's risk over the horizon: value at risk, drawdown, concentration, hedges.",
            tool_name: "record_risk_report",
            tool_description: "Record the risk report.",
            max_tokens: 1500,
            schema: || {
                json!({
                    "type": "object",
                    "required": ["risk_level", "var_pct", "max_drawdown_pct", "concentration_warnings", "hedges", "summary"],
                    "properties": {
                        "risk_level": {"type": "string", "enum": ["low", "moderate", "elevated", "high"]},
                        "var_pct": {"type": "number", "minimum": 0, "maximum": 100},
                        "max_drawdown_pct": {"type": "number", "minimum": 0, "maximum": 100},
                        "concentration_warnings": {"type": "array", "maxItems": 5, "items": {"type": "string"}},
                        "hedges": {"type": "array", "maxItems": 5, "items": {
                            "type": "object",
                            "required": ["ticker", "action"],
                            "properties": {
                                "ticker": {"type": "string"},
                                "action": {"type": "string", "enum": ["buy_put", "reduce", "hedge_futures", "none"]},
                                "rationale": {"type": "string"}
                            }
                        }},
                        "summary": {"type": "string"}
                    }
                })
            },
        },
        JobType::StrategyBacktest => Template {
            system: ANALYST,
            task: "Review this strategy backtest: is it promising, what are its strengths and weaknesses, what to test next.",
            tool_name: "record_backtest_review",
            tool_description: "Record the backtest review.",
            max_tokens: 1500,
            schema: || {
                json!({
                    "type": "object",
                    "required": ["verdict", "sharpe", "cagr_pct", "max_drawdown_pct", "strengths", "weaknesses", "next_steps"],
                    "properties": {
                        "verdict": {"type": "string", "enum": ["promising", "needs_work", "reject"]},
                        "sharpe": {"type": "number"},
                        "cagr_pct": {"type": "number"},
                        "max_drawdown_pct": {"type": "number"},
                        "strengths": {"type": "array", "maxItems": 5, "items": {"type": "string"}},
                        "weaknesses": {"type": "array", "maxItems": 5, "items": {"type": "string"}},
                        "next_steps": {"type": "array", "maxItems": 5, "items": {"type": "string"}}
                    }
                })
            },
        },
        JobType::SentimentAnalysis => Template {
            system: ANALYST,
            task: "Rate the market sentiment of these headlines for the ticker, and say what drives it.",
            tool_name: "record_sentiment",
            tool_description: "Record the sentiment analysis.",
            max_tokens: 800,
            schema: || {
                json!({
                    "type": "object",
                    "required": ["ticker", "sentiment", "score", "drivers", "summary"],
                    "properties": {
                        "ticker": {"type": "string"},
                        "sentiment": {"type": "string", "enum": ["very_negative", "negative", "neutral", "positive", "very_positive"]},
                        "score": {"type": "number", "minimum": -1, "maximum": 1},
                        "drivers": {"type": "array", "maxItems": 10, "items": {
                            "type": "object",
                            "required": ["headline", "impact"],
                            "properties": {
                                "headline": {"type": "string"},
                                "impact": {"type": "string", "enum": ["negative", "neutral", "positive"]}
                            }
                        }},
                        "summary": {"type": "string"}
                    }
                })
            },
        },
        JobType::ModelEvaluation => Template {
            system: ANALYST,
            task: "Evaluate this trading model from its out-of-sample metrics: grade it, judge overfitting, recommend next steps.",
            tool_name: "record_model_evaluation",
            tool_description: "Record the model evaluation.",
            max_tokens: 1200,
            schema: || {
                json!({
                    "type": "object",
                    "required": ["model_name", "grade", "accuracy", "overfitting_risk", "findings", "recommendations"],
                    "properties": {
                        "model_name": {"type": "string"},
                        "grade": {"type": "string", "enum": ["A", "B", "C", "D", "F"]},
                        "accuracy": {"type": "number", "minimum": 0, "maximum": 1},
                        "overfitting_risk": {"type": "string", "enum": ["low", "medium", "high"]},
                        "findings": {"type": "array", "maxItems": 5, "items": {"type": "string"}},
                        "recommendations": {"type": "array", "maxItems": 5, "items": {"type": "string"}}
                    }
                })
            },
        },
        JobType::TradingAnalytics => Template {
            system: ANALYST,
            task: "Analyse these trades for the period: profit and loss, hit rate, best and worst names, patterns, suggestions.",
            tool_name: "record_trading_analytics",
            tool_description: "Record the trading analytics.",
            max_tokens: 1200,
            schema: || {
                json!({
                    "type": "object",
                    "required": ["total_pnl", "win_rate_pct", "trade_count", "best_ticker", "worst_ticker", "patterns", "suggestions"],
                    "properties": {
                        "total_pnl": {"type": "number"},
                        "win_rate_pct": {"type": "number", "minimum": 0, "maximum": 100},
                        "trade_count": {"type": "integer", "minimum": 0},
                        "best_ticker": {"type": "string"},
                        "worst_ticker": {"type": "string"},
                        "patterns": {"type": "array", "maxItems": 5, "items": {"type": "string"}},
                        "suggestions": {"type": "array", "maxItems": 5, "items": {"type": "string"}}
                    }
                })
            },
        },
    }
}
