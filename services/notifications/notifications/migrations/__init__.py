"""Notifications' branch of its schema's history: no revisions yet, the schema holds only
the kernel's tables (`concord.migrations` says how the branches fit together). Its first
table arrives as `notifications_0001` here, with `branch_labels = ("notifications",)`."""
