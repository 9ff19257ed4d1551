"""Reference profiles, binning and drift statistics, shared by the live monitor and offline reports."""
