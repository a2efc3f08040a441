# Segments (rule language, membership) arrive with the segments issue.
