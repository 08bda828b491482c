//! Wire schemas for the OpenAPI document (documentation types: the handlers work on raw JSON).
