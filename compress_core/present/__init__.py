"""What a person sees: pure plotly figures from tidy DataFrames and the self-contained HTML report."""
