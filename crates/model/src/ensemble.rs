//! An ensemble: several networks that answer together with the mean of
//! their class probabilities. As a [`Classifier`] its scores are the log of
//! that mean, so evaluation, prediction, the report, the web app and export
//! run it as they run one network. Members may be of different
//! architectures; they must take the same images (every network here reads
//! 28x28 single-channel images) and be on one device.

use tch::{Device, Tensor};

use crate::{Classifier, ModelError, Network};

/// Networks answering with the mean of their probabilities.
#[derive(Debug)]
pub struct Ensemble {
    members: Vec<Network>,
}

impl Ensemble {
    /// The ensemble of `members`.
    ///
    /// # Errors
    /// [`ModelError::Setting`] for no member; [`ModelError::Device`] for
    /// members on different devices.
    pub fn new(members: Vec<Network>) -> Result<Self, ModelError> {
        let Some(first) = members.first() else {
            return Err(ModelError::Setting { setting: "an ensemble", reason: "needs at least one member".into() });
        };
        let device = first.device();
        if let Some(other) = members.iter().find(|member| member.device() != device) {
            return Err(ModelError::Device { what: "an ensemble's member", expected: device, found: other.device() });
        }
        Ok(Self { members })
    }

    /// The members, in the order given.
    pub fn members(&self) -> &[Network] {
        &self.members
    }
}

impl Classifier for Ensemble {
    /// One member: its own scores, bit for bit. Several: the log of the
    /// mean of their softmax probabilities, whose softmax is that mean.
    fn logits(&self, images: &Tensor) -> Result<Tensor, ModelError> {
        if let [only] = self.members.as_slice() {
            return only.logits(images);
        }
        crate::classifier::log_mean_probabilities(self.members.iter().map(|member| member.logits(images)))
    }

    fn device(&self) -> Device {
        self.members[0].device()
    }

    fn detached(&self) -> Result<Box<dyn Classifier>, ModelError> {
        let members = self.members.iter().map(Network::detached_copy).collect::<Result<_, _>>()?;
        Ok(Box::new(Ensemble { members }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    use crate::{Architecture, probabilities};

    #[test]
    fn the_ensemble_answers_with_its_members_mean_probabilities() {
        tch::manual_seed(3);
        let members: Vec<Network> = [Architecture::Intended, Architecture::Seed]
            .into_iter()
            .map(|architecture| Network::new(architecture, Device::Cpu).unwrap())
            .collect();
        let images = Tensor::rand([6, 28, 28], (Kind::Float, Device::Cpu));
        let each: Vec<Vec<Vec<f32>>> =
            members.iter().map(|member| probabilities(member, &images, 4).unwrap()).collect();
        let ensemble = Ensemble::new(members).unwrap();
        let rows = probabilities(&ensemble, &images, 4).unwrap();
        for (index, row) in rows.iter().enumerate() {
            for class in 0..10 {
                let mean = (each[0][index][class] + each[1][index][class]) / 2.0;
                assert!((row[class] - mean).abs() < 1e-6, "image {index}, class {class}: {} vs {mean}", row[class]);
            }
        }
        let copy = ensemble.detached().unwrap();
        assert_eq!(probabilities(copy.as_ref(), &images, 6).unwrap(), rows);
    }

    #[test]
    fn one_member_is_that_network_and_two_copies_of_it_answer_as_it_does() {
        tch::manual_seed(4);
        let network = Network::new(Architecture::Intended, Device::Cpu).unwrap();
        let images = Tensor::rand([5, 28, 28], (Kind::Float, Device::Cpu));
        let alone = network.logits(&images).unwrap();
        let single = Ensemble::new(vec![network.detached_copy().unwrap()]).unwrap();
        assert!(single.logits(&images).unwrap().equal(&alone), "one member: its own scores, bit for bit");
        let twice = Ensemble::new(vec![network.detached_copy().unwrap(), network.detached_copy().unwrap()]).unwrap();
        let (ours, theirs) = (probabilities(&twice, &images, 5).unwrap(), probabilities(&network, &images, 5).unwrap());
        for (a, b) in ours.iter().flatten().zip(theirs.iter().flatten()) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        let message = Ensemble::new(Vec::new()).unwrap_err().to_string();
        assert!(message.contains("needs at least one member"), "{message}");
    }
}
