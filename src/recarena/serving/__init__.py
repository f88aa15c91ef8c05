"""The application layer: a finished run served over HTTP (engine, API), and the feedback it collects."""
