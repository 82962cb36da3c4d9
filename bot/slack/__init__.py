"""The Slack side: thin Bolt listeners, message normalisation, names and markup."""
