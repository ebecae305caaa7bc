"""Reports from the results store: tables, figures, the HTML page, leaderboards."""
