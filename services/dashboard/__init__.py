"""The live Dash dashboard: pipeline health, pair charts, statistics, alerts, history, export."""
