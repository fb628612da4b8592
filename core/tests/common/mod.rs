pub mod ups;
