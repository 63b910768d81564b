//! Tests on real kernel objects, in private network namespaces.
