"""Operations: health, metrics, alerts, maintenance, schedules, erasure, system checks."""
