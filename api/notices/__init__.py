"""Notices that reach the borrower: the message catalogue (zh-CN, en) and the sender that renders the risk monitor's
notices with each borrower's phone and language and hands them to the SMS provider."""
