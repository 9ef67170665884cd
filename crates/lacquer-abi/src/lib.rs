//! The stable module ABI.
