-- First statement of a read of several statements: all of them see one snapshot.
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY;
