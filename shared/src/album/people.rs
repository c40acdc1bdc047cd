//! The people of an album, from its photos' faces.

use super::answers::{FaceDetail, Person, RepresentativeFace};
use crate::pipeline::face_record::StoredFace;
use crate::pipeline::faces::cluster_people;

/// The anchor's answer for an album's faces, each `(photo index, face)`: the clusters of
/// [`cluster_people`], each with its photos and representative face, and every face's
/// detail when asked. `photo(p)` names photo `p`.
pub fn persons(faces: &[(usize, StoredFace)], photo: impl Fn(usize) -> String, detail: bool) -> Vec<Person> {
    let name = |i: usize| photo(faces[i].0);
    cluster_people(faces)
        .iter()
        .map(|c| Person {
            images: c.faces.iter().map(|&i| name(i)).collect(),
            representative_face: RepresentativeFace {
                image: name(c.representative),
                bbox: faces[c.representative].1.pixel_box(),
            },
            faces: detail.then(|| {
                c.faces
                    .iter()
                    .map(|&i| {
                        let f = &faces[i].1;
                        FaceDetail {
                            image: name(i),
                            bbox: f.pixel_box(),
                            score: f.score,
                            quality: f.quality,
                            sharpness: f.sharpness,
                            frontalness: f.frontalness,
                        }
                    })
                    .collect()
            }),
        })
        .collect()
}
