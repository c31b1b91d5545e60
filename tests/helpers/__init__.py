"""What several test modules share: small suites, slow models, data files, result sets."""
