"""The lending app: branches, books, copies, members and their loans."""
